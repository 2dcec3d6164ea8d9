"""SendGridEmail through the official library (and its `Mail` body over aiohttp, on the
sending loop) against the local SendGrid stand-in."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from app import unsubscribe
from app.settings import Settings
from channels.base import Message, Outcome, Recipient, SendResult
from channels.email.adapter import SendGridEmail
from channels.email.settings import SendGridSettings
from channels.settings import read
from tests.providers.sendgrid import SendGridServer, error_body, sendgrid_error
from tests.providers.server import unused_port

CONTENT = {
    "subject": "Votre panier vous attend",
    "html": "<p>Code <b>PANIER10</b></p>",
    "text": "Code PANIER10",
}


def message(
    email: str | None = "ann@example.com",
    journey_id: str | None = "cart-abandonment",
    content: dict[str, Any] | None = None,
) -> Message:
    return Message(
        delivery_id="1234",
        channel="email",
        recipient=Recipient(profile_id="p-1", email=email),
        content=dict(CONTENT if content is None else content),
        journey_id=journey_id,
    )


SECRET = "adapter-tests-secret-0123"

Send = Callable[[SendGridEmail, Message], SendResult]


async def _on_a_loop(channel: SendGridEmail, sent: Message) -> SendResult:
    try:
        return await channel.send_async(sent)
    finally:
        await channel.aclose()


@pytest.fixture(params=["blocking", "async"])
def send(request: pytest.FixtureRequest) -> Send:
    """Each test holds for both ways of sending: `send_async` on the workers' sending loop,
    `send` for a replay or a simulation; the same request and the same answers."""
    if request.param == "blocking":
        return lambda channel, sent: channel.send(sent)
    return lambda channel, sent: asyncio.run(_on_a_loop(channel, sent))


def channel_settings(**values: Any) -> Settings:
    return Settings(secret_key=SECRET, public_url="https://shop.example.com", **values)


@pytest.fixture
def channel(
    sendgrid_server: SendGridServer, make_settings: Callable[..., Settings]
) -> SendGridEmail:
    return SendGridEmail(
        make_settings(
            **sendgrid_server.settings_overrides(),
            sendgrid_from_email="shop@example.com",
            secret_key=SECRET,
            public_url="https://shop.example.com",
        ),
        read(SendGridSettings),
    )


def test_sent_with_exactly_what_sendgrid_expects(
    send: Send, channel: SendGridEmail, sendgrid_server: SendGridServer
) -> None:
    result = send(channel, message())

    assert result.outcome is Outcome.SENT, result.error
    assert result.status_code == 202
    (request,) = sendgrid_server.requests
    assert (request.method, request.path) == ("POST", "/v3/mail/send")
    assert request.header("authorization") == "Bearer SG.test-key"
    assert request.header("content-type") == "application/json"
    body = request.body
    assert body["personalizations"] == [{"to": [{"email": "ann@example.com"}]}]
    assert body["from"] == {"email": "shop@example.com"}
    assert body["subject"] == CONTENT["subject"]
    # The template's parts, each followed by the unsubscribe footer.
    assert [part["type"] for part in body["content"]] == ["text/plain", "text/html"]
    assert body["content"][0]["value"].startswith(CONTENT["text"] + "\n\n")
    assert body["content"][1]["value"].startswith(CONTENT["html"] + "<p ")
    assert body["custom_args"] == {"carillon_delivery_id": "1234"}
    assert body["categories"] == ["cart-abandonment"]
    # The id SendGrid put in X-Message-Id is the one recorded.
    (accepted_id, _), *_ = sendgrid_server.accepted
    assert result.provider_message_id == accepted_id


def test_no_category_without_a_journey(
    send: Send, channel: SendGridEmail, sendgrid_server: SendGridServer
) -> None:
    assert send(channel, message(journey_id=None)).outcome is Outcome.SENT
    assert "categories" not in sendgrid_server.requests[0].body


def test_text_only_message_is_sent(
    send: Send, channel: SendGridEmail, sendgrid_server: SendGridServer
) -> None:
    result = send(channel, message(content={"subject": "s", "html": "", "text": "plain"}))
    assert result.outcome is Outcome.SENT, result.error
    [part] = sendgrid_server.requests[0].body["content"]
    assert part["type"] == "text/plain"
    assert part["value"].startswith("plain\n\nSe désabonner / Unsubscribe : https://")


def test_every_message_carries_a_one_click_unsubscribe_link(
    send: Send, channel: SendGridEmail, sendgrid_server: SendGridServer
) -> None:
    assert send(channel, message()).outcome is Outcome.SENT
    body = sendgrid_server.requests[0].body
    headers = body["headers"]
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = headers["List-Unsubscribe"].strip("<>")
    assert link.startswith("https://shop.example.com/unsubscribe/")
    claim = unsubscribe.read_token(channel_settings(), link.rsplit("/", 1)[1])
    assert (claim.delivery_id, claim.profile_id) == (1234, "p-1")
    parts = {p["type"]: p["value"] for p in body["content"]}
    # No link in the template: a footer is added to each part.
    assert parts["text/html"].startswith(CONTENT["html"])
    assert f'<a href="{link}">' in parts["text/html"]
    assert parts["text/plain"].endswith(link)


def test_the_link_goes_where_the_template_put_it(
    send: Send, channel: SendGridEmail, sendgrid_server: SendGridServer
) -> None:
    placed = {
        "subject": "s",
        "html": f"<html><body><a href='{unsubscribe.PLACEHOLDER}'>stop</a></body></html>",
        "text": f"stop: {unsubscribe.PLACEHOLDER}",
    }
    assert send(channel, message(content=placed)).outcome is Outcome.SENT
    body = sendgrid_server.requests[0].body
    link = body["headers"]["List-Unsubscribe"].strip("<>")
    parts = {p["type"]: p["value"] for p in body["content"]}
    assert parts["text/html"] == f"<html><body><a href='{link}'>stop</a></body></html>"
    assert parts["text/plain"] == f"stop: {link}"


def test_a_footer_goes_inside_the_body_element(
    send: Send, channel: SendGridEmail, sendgrid_server: SendGridServer
) -> None:
    page = {"subject": "s", "html": "<html><BODY><p>hi</p></BODY></html>", "text": "hi"}
    assert send(channel, message(content=page)).outcome is Outcome.SENT
    parts = {p["type"]: p["value"] for p in sendgrid_server.requests[0].body["content"]}
    assert parts["text/html"].startswith("<html><BODY><p>hi</p><p ")
    assert parts["text/html"].endswith("</a></p></BODY></html>")


def test_wrong_api_key_is_a_permanent_failure_with_sendgrids_words(
    send: Send, sendgrid_server: SendGridServer, make_settings: Callable[..., Settings]
) -> None:
    channel = SendGridEmail(
        make_settings(sendgrid_api_key="SG.wrong", sendgrid_base_url=sendgrid_server.base_url),
        read(SendGridSettings),
    )
    result = send(channel, message())
    assert result.outcome is Outcome.FAILED
    assert result.status_code == 401
    assert result.transient is False
    assert "The provided authorization grant is invalid, expired, or revoked" in (
        result.error or ""
    )


def test_bad_request_keeps_every_provider_message(
    send: Send, channel: SendGridEmail, sendgrid_server: SendGridServer
) -> None:
    sendgrid_server.fail_next(
        400,
        error_body(
            sendgrid_error("Does not contain a valid address.", "personalizations.0.to.0.email"),
            sendgrid_error("The from address does not match a verified Sender Identity.", "from"),
        ),
    )
    result = send(channel, message())
    assert result.outcome is Outcome.FAILED
    assert (result.status_code, result.transient) == (400, False)
    assert result.error is not None
    assert "personalizations.0.to.0.email: Does not contain a valid address." in result.error
    assert "from: The from address does not match a verified Sender Identity." in result.error


@pytest.mark.parametrize("status", [401, 403, 413])
def test_refusals_are_permanent(
    send: Send, channel: SendGridEmail, sendgrid_server: SendGridServer, status: int
) -> None:
    sendgrid_server.fail_next(status, error_body(sendgrid_error("refused")))
    result = send(channel, message())
    assert (result.outcome, result.status_code, result.transient) == (
        Outcome.FAILED,
        status,
        False,
    )
    assert "refused" in (result.error or "")


def test_throttled_with_retry_after_is_transient(
    send: Send, channel: SendGridEmail, sendgrid_server: SendGridServer
) -> None:
    sendgrid_server.fail_next(
        429, error_body(sendgrid_error("too many requests")), {"Retry-After": "7"}
    )
    result = send(channel, message())
    assert result.outcome is Outcome.FAILED
    assert (result.status_code, result.transient) == (429, True)
    assert result.retry_after_seconds == 7.0
    assert "too many requests" in (result.error or "")


def test_throttled_with_rate_limit_reset_gives_the_wait(
    send: Send, channel: SendGridEmail, sendgrid_server: SendGridServer
) -> None:
    """SendGrid's documented 429 carries X-RateLimit-Reset (epoch seconds), not Retry-After."""
    reset = int(time.time()) + 30
    sendgrid_server.fail_next(
        429,
        error_body(sendgrid_error("too many requests")),
        {"X-RateLimit-Limit": "150", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)},
    )
    result = send(channel, message())
    assert result.transient is True
    assert result.retry_after_seconds is not None
    assert 20 <= result.retry_after_seconds <= 31


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_transient(
    send: Send, channel: SendGridEmail, sendgrid_server: SendGridServer, status: int
) -> None:
    sendgrid_server.fail_next(status, "<html>Bad gateway</html>")
    result = send(channel, message())
    assert (result.outcome, result.status_code, result.transient) == (
        Outcome.FAILED,
        status,
        True,
    )
    assert "Bad gateway" in (result.error or "")


def test_connection_refused_is_transient(
    send: Send, make_settings: Callable[..., Settings]
) -> None:
    channel = SendGridEmail(
        make_settings(
            sendgrid_api_key="SG.test-key", sendgrid_base_url=f"http://127.0.0.1:{unused_port()}"
        ),
        read(SendGridSettings),
    )
    result = send(channel, message())
    assert result.outcome is Outcome.FAILED
    assert result.transient is True
    assert result.status_code is None
    assert "unreachable" in (result.error or "")


def test_timeout_is_the_configured_one_and_transient(
    send: Send, sendgrid_server: SendGridServer, make_settings: Callable[..., Settings]
) -> None:
    channel = SendGridEmail(
        make_settings(**sendgrid_server.settings_overrides(), provider_timeout_seconds=0.3),
        read(SendGridSettings),
    )
    sendgrid_server.fail_next(202, None, {"X-Message-Id": "late"}, delay_seconds=10)
    started = time.monotonic()
    result = send(channel, message())
    assert time.monotonic() - started < 5
    assert (result.outcome, result.transient) == (Outcome.FAILED, True)


@pytest.mark.parametrize(
    ("email", "content", "reason"),
    [
        (None, None, "no e-mail address"),
        ("   ", None, "no e-mail address"),
        ("ann@example.com", {"subject": "", "html": "x", "text": "x"}, "no subject"),
        ("ann@example.com", {"subject": "s", "html": "", "text": ""}, "neither a text nor"),
    ],
)
def test_unsendable_messages_fail_permanently_without_a_call(
    send: Send,
    channel: SendGridEmail,
    sendgrid_server: SendGridServer,
    email: str | None,
    content: dict[str, Any] | None,
    reason: str,
) -> None:
    result = send(channel, message(email=email, content=content))
    assert (result.outcome, result.transient) == (Outcome.FAILED, False)
    assert reason in (result.error or "")
    assert sendgrid_server.requests == []


# --------------------------------------------------------------------------- personalizations


def to(address: str, delivery_id: str, **changes: Any) -> Message:
    return replace(
        message(), delivery_id=delivery_id, recipient=Recipient(f"p-{address}", address), **changes
    )


async def _many_on_a_loop(channel: SendGridEmail, sent: list[Message]) -> list[SendResult]:
    try:
        return await channel.send_many_async(sent)
    finally:
        await channel.aclose()


def received_by(body: dict[str, Any], index: int) -> list[str]:
    """What the personalization at `index` receives once SendGrid substituted its tags."""
    parts = [part["value"] for part in body["content"]]
    for tag, value in body["personalizations"][index]["substitutions"].items():
        parts = [part.replace(tag, value) for part in parts]
    return parts


def test_the_same_content_goes_in_one_request_with_one_personalization_each(
    channel: SendGridEmail, sendgrid_server: SendGridServer
) -> None:
    messages = [to(f"p{i}@example.com", str(100 + i)) for i in range(3)]
    assert len({channel.batch_key(m) for m in messages}) == 1

    results = asyncio.run(_many_on_a_loop(channel, messages))

    (request,) = sendgrid_server.requests  # and the stand-in checked it against the spec
    (accepted_id, body), *_ = sendgrid_server.accepted
    assert [(r.outcome, r.status_code, r.provider_message_id) for r in results] == [
        (Outcome.SENT, 202, accepted_id)
    ] * 3
    assert "custom_args" not in body and "headers" not in body  # each recipient's own
    assert body["subject"] == CONTENT["subject"] and body["categories"] == ["cart-abandonment"]
    for i, sent in enumerate(messages):
        personalization = body["personalizations"][i]
        link = unsubscribe.link(channel_settings(), sent.delivery_id, sent.recipient.profile_id)
        assert personalization["to"] == [{"email": f"p{i}@example.com"}]
        assert personalization["custom_args"] == {"carillon_delivery_id": str(100 + i)}
        assert personalization["headers"] == {
            "List-Unsubscribe": f"<{link}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
        # Each person receives exactly what a request of their own would have carried.
        alone = [part["value"] for part in channel.build_mail(sent).get()["content"]]
        assert received_by(body, i) == alone and link in alone[0]


def test_content_that_differs_beyond_the_recipient_does_not_share_a_request(
    channel: SendGridEmail,
) -> None:
    first = to("a@example.com", "1")
    keys = {
        channel.batch_key(m)
        for m in (
            first,
            to("b@example.com", "2", content={**CONTENT, "subject": "Another"}),
            to("c@example.com", "3", content={**CONTENT, "html": "<p>Other</p>"}),
            to("d@example.com", "4", journey_id="another-journey"),
        )
    }
    assert len(keys) == 4
    assert channel.batch_key(to(" ", "5")) is None  # refused before any call: alone


@pytest.mark.parametrize(
    ("status", "transient"), [(400, False), (503, True)], ids=["refused", "outage"]
)
def test_an_error_answer_is_every_messages_result(
    channel: SendGridEmail, sendgrid_server: SendGridServer, status: int, transient: bool
) -> None:
    sendgrid_server.fail_next(status, error_body(sendgrid_error("No way", "content")))

    results = asyncio.run(
        _many_on_a_loop(channel, [to(f"p{i}@example.com", str(i)) for i in range(2)])
    )

    assert len(sendgrid_server.requests) == 1
    assert [(r.outcome, r.status_code, r.transient, r.error) for r in results] == [
        (Outcome.FAILED, status, transient, f"SendGrid HTTP {status}: content: No way")
    ] * 2
