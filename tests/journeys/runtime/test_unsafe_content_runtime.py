"""Through the real engine: a link the data makes unsafe fails that delivery with the reason
and sends nothing; a condition over its limits lets nobody in and the log says why."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from app.delivery import models
from tests.helpers import Pipeline, deliveries, instances, journeys, person_at, send, track_at

REMINDER = """
id: reminder
name: Cart reminder
trigger:
  event: Cart Abandoned
steps:
  - send:
      channel: email
      subject: Votre panier
      text: "Votre panier : {{ event.properties.cart_url }}"
      html: "<p><a href='{{ event.properties.cart_url }}'>Votre panier</a></p>"
"""


def test_a_javascript_link_from_the_event_fails_the_delivery(
    tmp_path: Path, pipeline: Pipeline
) -> None:
    journeys(tmp_path, REMINDER)
    send(
        pipeline,
        person_at(),
        track_at("Cart Abandoned", cart_url=" JavaScript:alert(document.domain)"),
    )
    [delivery] = deliveries()
    assert (delivery.status, delivery.attempts, delivery.content) == (models.FAILED, 0, {})
    assert delivery.error == (
        "<a href> uses the javascript: scheme; links may only use http, https, mailto, tel"
    )


def test_a_link_to_an_unlisted_host_fails_when_hosts_are_set(
    tmp_path: Path, pipeline: Pipeline, settings_env: pytest.MonkeyPatch
) -> None:
    settings_env.setenv("CARILLON_LINK_HOSTS", "shop.example")
    journeys(tmp_path, REMINDER)
    send(
        pipeline,
        person_at(),
        track_at("Cart Abandoned", cart_url="https://shop.example.evil.example"),
    )
    send(
        pipeline,
        person_at("bob"),
        track_at("Cart Abandoned", user="bob", cart_url="https://shop.example/c/2"),
    )
    refused, sent = deliveries()
    assert refused.status == models.FAILED
    assert refused.error == (
        "<a href> points to shop.example.evil.example, a host taken from the data that is not "
        "in CARILLON_LINK_HOSTS (shop.example)"
    )
    assert sent.status == models.DRY_RUN
    assert "href='https://shop.example/c/2'" in sent.content["html"]


def test_a_trigger_condition_over_its_limits_lets_nobody_in(
    tmp_path: Path, pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    journeys(
        tmp_path,
        REMINDER.replace(
            "  event: Cart Abandoned\n",
            "  event: Cart Abandoned\n  when: event.properties.items.all(a,"
            " event.properties.items.all(b, a != b || a == b))\n",
        ),
    )
    with caplog.at_level(logging.INFO, logger="app.journeys.conditions"):
        send(
            pipeline,
            person_at(),
            track_at("Cart Abandoned", items=list(range(300)), cart_url="https://shop.example/c"),
        )
    assert instances() == [] and deliveries() == []
    assert "reminder trigger: condition" in caplog.text
    assert "the condition went over its limits: more than 25,000 evaluation steps" in caplog.text
