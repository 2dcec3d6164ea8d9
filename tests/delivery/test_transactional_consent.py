"""Consent for transactional messages, per channel: an e-mail receipt reaches a person who
unsubscribed from marketing, never an address that bounced or a person who complained; SMS keeps
its opt-in and its STOP. The same rule for a `kind: transactional` journey as for
`POST /v1/messages` (tested with the API in tests/messages)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.delivery import models
from app.profiles.consent import suppression_reason
from tests.delivery.conftest import SMS, journey_yaml
from tests.helpers import by_journey, deliver, load, person, route, track_now


@pytest.mark.parametrize(
    ("state", "receipt", "newsletter"),
    [
        ("unsubscribed", models.DRY_RUN, models.SUPPRESSED),
        ("bounced", models.SUPPRESSED, models.SUPPRESSED),
        ("complained", models.SUPPRESSED, models.SUPPRESSED),
        ("subscribed", models.DRY_RUN, models.DRY_RUN),
    ],
)
def test_an_email_receipt_passes_the_marketing_opt_out_only(
    tmp_path: Path, state: str, receipt: str, newsletter: str
) -> None:
    load(
        tmp_path,
        journey_yaml("receipt", "Order Completed", policy="kind: transactional\n"),
        journey_yaml("newsletter", "Order Completed"),
    )
    route(person("ada", email_consent=state), track_now("ada", "Order Completed"))
    assert deliver(by_journey("receipt").id).status == receipt
    assert deliver(by_journey("newsletter").id).status == newsletter


def test_a_transactional_sms_still_needs_the_opt_in_and_obeys_stop(tmp_path: Path) -> None:
    load(tmp_path, journey_yaml("code", "Login Requested", SMS, "kind: transactional\n"))
    route(person("ada", sms_consent="opted_out"), track_now("ada", "Login Requested"))
    delivery = deliver(by_journey("code").id)
    assert (delivery.status, delivery.error) == (models.SUPPRESSED, "suppressed: sms opted out")


@pytest.mark.parametrize(
    ("channel", "traits", "reason"),
    [
        ("email", {"email_consent": "unsubscribed"}, None),
        ("email", {"email_consent": "bounced"}, "email bounced"),
        ("sms", {}, "sms requires explicit opt-in"),
        ("sms", {"sms_consent": "opted_out"}, "sms opted out"),
        ("whatsapp", {}, "whatsapp requires explicit opt-in"),
        ("meta_audience", {"ads_consent": "denied"}, "ads denied"),
    ],
)
def test_each_channel_says_what_a_transactional_message_passes(
    channel: str, traits: dict[str, str], reason: str | None
) -> None:
    assert suppression_reason(channel, traits, transactional=True) == reason
