"""Through the real engine: a link the data makes unsafe fails that delivery with the reason
and sends nothing; a condition over its limits lets nobody in and the log says why."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from app.delivery import models
from tests.conftest import Pipeline
from tests.conftest import clean_state as clean_state  # these tests need the database
from tests.conftest import schema as schema
from tests.test_journey_runtime import deliveries, instances, send
from tests.test_journey_steps import journeys, person, track

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
    send(pipeline, person(), track("Cart Abandoned", cart_url=" JavaScript:alert(document.domain)"))
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
    send(pipeline, person(), track("Cart Abandoned", cart_url="https://shop.example.evil.example"))
    send(
        pipeline,
        person("bob"),
        track("Cart Abandoned", user="bob", cart_url="https://shop.example/c/2"),
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
            person(),
            track("Cart Abandoned", items=list(range(300)), cart_url="https://shop.example/c"),
        )
    assert instances() == [] and deliveries() == []
    assert "reminder trigger: condition" in caplog.text
    assert "the condition went over its limits: more than 25,000 evaluation steps" in caplog.text
