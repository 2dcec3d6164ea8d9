"""The shipped journeys parse, and their conditions and templates behave."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest

from app.journeys.conditions import ConditionEvalError
from app.journeys.definition import ExitWhen, Journey, ReEntry, SendStep, WaitStep
from app.journeys.language.files import load_directory, load_path

SHIPPED = Path(__file__).resolve().parents[2] / "journeys"


@pytest.fixture(scope="module")
def shipped() -> dict[str, Journey]:
    journeys, issues = load_directory(SHIPPED)
    assert issues == []
    return {journey.id: journey for journey in journeys}


def cart_event(**properties: object) -> dict[str, object]:
    return {
        "event": {
            "event": "Cart Abandoned",
            "type": "track",
            "userId": "u1",
            "properties": properties,
            "timestamp": "2026-11-02T09:00:00Z",
        },
        "profile": {"id": "p1", "traits": {}, "email": "a@example.com"},
    }


def test_the_four_ship(shipped: dict[str, Journey]) -> None:
    assert sorted(shipped) == [
        "abandoner-rescue",
        "cart-abandonment",
        "instagram-retarget",
        "newsletter-welcome",
    ]
    rescue = shipped["abandoner-rescue"]  # the segment-entry example
    assert (rescue.trigger.segment, rescue.trigger.on) == ("frequent-abandoners", "enter")
    for journey in shipped.values():
        assert journey.enabled
        text = Path(journey.file).read_text(encoding="utf-8")
        assert journey.source == text
        assert journey.checksum == hashlib.sha256(text.encode()).hexdigest()


def test_cart_abandonment_shape(shipped: dict[str, Journey]) -> None:
    cart = shipped["cart-abandonment"]
    assert cart.name == "Abandoned cart reminder"
    assert cart.trigger.event == "Cart Abandoned"
    assert cart.trigger.when is not None
    assert cart.trigger.when.source == "event.properties.total >= 20"
    assert cart.exit_when == ExitWhen(event="Order Completed", when=None)
    assert cart.re_entry == ReEntry(mode="cooldown", cooldown=timedelta(days=7))
    wait, send = cart.steps
    assert wait == WaitStep(path="0", duration=timedelta(hours=1))
    assert isinstance(send, SendStep)
    assert (send.path, send.channel) == ("1", "email")
    assert sorted(send.content) == ["html", "subject", "text"]


@pytest.mark.parametrize(("total", "expected"), [(25, True), (25.5, True), (20, True), (10, False)])
def test_cart_condition(shipped: dict[str, Journey], total: float, expected: bool) -> None:
    when = shipped["cart-abandonment"].trigger.when
    assert when is not None
    assert when.evaluate(cart_event(total=total)) is expected


def test_cart_condition_without_total_is_an_error(shipped: dict[str, Journey]) -> None:
    when = shipped["cart-abandonment"].trigger.when
    assert when is not None
    with pytest.raises(ConditionEvalError, match="total"):
        when.evaluate(cart_event(cart_url="https://shop.example/cart/1"))


def _send(journey: Journey) -> SendStep:
    step = journey.steps[-1]
    assert isinstance(step, SendStep)
    return step


def test_cart_subject_falls_back_to_bonjour(shipped: dict[str, Journey]) -> None:
    subject = _send(shipped["cart-abandonment"]).content["subject"]
    data = cart_event(total=25)
    assert subject.render(data) == "Bonjour, votre panier vous attend"
    data["profile"] = {"id": "p1", "traits": {"first_name": "Alice"}}
    assert subject.render(data) == "Alice, votre panier vous attend"
    data["profile"] = {"id": "p1"}  # no traits at all
    assert subject.render(data) == "Bonjour, votre panier vous attend"


def test_cart_html_escapes_and_text_does_not(shipped: dict[str, Journey]) -> None:
    content = _send(shipped["cart-abandonment"]).content
    data = cart_event(total=42.5, cart_url="https://x.example/?a=<script>alert(1)</script>")
    html = content["html"].render(data)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.startswith("<p>Votre panier de 42.5 € vous attend : <a href='")
    text = content["text"].render(data)
    assert text == (
        "Votre panier de 42.5 € vous attend : https://x.example/?a=<script>alert(1)</script>"
        " — code PANIER10 : -10 %."
    )


def test_html_cannot_break_out_of_the_attribute(shipped: dict[str, Journey]) -> None:
    html = _send(shipped["cart-abandonment"]).content["html"]
    url = "https://shop.example/c/1' onmouseover='alert(1)"
    rendered = html.render(cart_event(total=30, cart_url=url))
    assert "c/1&#39; onmouseover=&#39;alert(1)" in rendered


def test_newsletter_welcome(shipped: dict[str, Journey]) -> None:
    welcome = shipped["newsletter-welcome"]
    assert welcome.trigger.event == "Newsletter Subscribed"
    assert welcome.trigger.when is None and welcome.exit_when is None
    assert welcome.re_entry == ReEntry(mode="never", cooldown=None)
    send = _send(welcome)
    assert (send.path, send.channel, list(send.content)) == ("0", "sms", ["text"])
    text = send.content["text"]
    assert text.render({"event": {}, "profile": {"traits": {"first_name": "Léa"}}}) == (
        "Bienvenue Léa ! -15 % sur votre première commande avec le code BIENVENUE15."
    )
    assert text.render({"event": {}, "profile": {}}).startswith("Bienvenue  ! -15 %")


def test_instagram_retarget(shipped: dict[str, Journey]) -> None:
    retarget = shipped["instagram-retarget"]
    assert retarget.trigger.event == "Instagram Post Liked"
    send = _send(retarget)
    assert (send.path, send.channel) == ("0", "meta_audience")
    assert send.content["audience_id"].render({"event": {}, "profile": {}}) == "23850000000000001"


def test_load_path_accepts_one_file() -> None:
    journeys, issues = load_path(SHIPPED / "newsletter_welcome.yaml")
    assert issues == []
    assert [j.id for j in journeys] == ["newsletter-welcome"]
    assert journeys[0].file == str(SHIPPED / "newsletter_welcome.yaml")
