"""`send: {channel: preferred, message: …}` through the real engine: the person's segment
lists the channels in order, the first the message has a variant for and the person can be
reached on with consent is taken, and the delivery's history says which and why; when none
would do, the step is recorded as skipped with the reasons and the trip goes on."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from app.cli import app
from app.clock import ManualClock
from app.db import session_scope
from app.delivery import history, models
from app.delivery.models import Delivery
from app.journeys import timeline
from app.segments import catalog
from tests.helpers import (
    REPO,
    cart,
    deliveries,
    instances,
    journeys,
    person_at,
    route,
    track_at,
)
from tests.processes import CARILLON

RESCUE = """
id: rescue
name: Rescue
trigger: {segment: frequent-abandoners}
messages:
  rescue:
    sms: {text: "SMS {{ profile.traits.first_name }}"}
    email: {subject: "Mail {{ profile.traits.first_name }}", html: "<p>Code RETOUR15</p>"}
steps:
  - send: {channel: preferred, message: rescue}
  - update_profile: {set: {rescued: true}}
"""

# Event-triggered: the person's own segments decide (files by name, then the stage).
WELCOME = """
id: welcome
name: Welcome
trigger: {event: Signed Up}
messages:
  hello:
    email: {subject: Hello, html: "<p>Hello</p>"}
    sms: {text: Hello}
steps:
  - send: {channel: preferred, message: hello}
"""


@pytest.fixture
def segments() -> None:
    assert catalog.sync_directory(REPO / "segments") == []


def abandon(user: str = "alice", **traits: Any) -> None:
    """The person, then two carts: they enter frequent-abandoners (channels: sms, email)."""
    route(person_at(user, **traits), cart(30, minutes=1, user=user), cart(40, minutes=2, user=user))


def channel_history(delivery: Delivery) -> list[str | None]:
    with session_scope() as session:
        return [e.detail for e in history.of(session, delivery.id) if e.kind == "channel"]


def shown(delivery: Delivery) -> str:
    result = CliRunner().invoke(app, ["deliveries", "show", str(delivery.id)])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_the_first_channel_of_the_segment_with_consent_and_an_address_is_chosen(
    tmp_path: Path, manual_clock: ManualClock, segments: None
) -> None:
    journeys(tmp_path, RESCUE)
    abandon("alice", phone="+33612345678", sms_opt_in=True)
    [sent] = deliveries()
    assert (sent.channel, sent.status, sent.content) == (
        "sms",
        models.PENDING,
        {"text": "SMS Alice"},
    )
    assert channel_history(sent) == [
        "channel preferred → sms (segment frequent-abandoners: sms, email)"
    ]


def test_without_sms_consent_the_second_channel_is_chosen_and_the_history_says_why(
    tmp_path: Path, manual_clock: ManualClock, segments: None
) -> None:
    journeys(tmp_path, RESCUE)
    abandon("bob", phone="+33612345678")  # a phone, but never opted in to SMS
    [sent] = deliveries()
    assert (sent.channel, sent.status) == ("email", models.PENDING)
    assert sent.content["subject"] == "Mail Alice"
    note = (
        "channel preferred → email (segment frequent-abandoners: sms, email; "
        "sms skipped: no consent (sms requires explicit opt-in))"
    )
    assert channel_history(sent) == [note]
    assert f"channel chosen: {note}" in shown(sent)


def test_a_channel_without_an_address_is_passed_over(
    tmp_path: Path, manual_clock: ManualClock, segments: None
) -> None:
    journeys(tmp_path, RESCUE)
    abandon("cat", sms_opt_in=True)  # opted in, but no phone number known
    [sent] = deliveries()
    assert sent.channel == "email"
    assert channel_history(sent) == [
        "channel preferred → email (segment frequent-abandoners: sms, email; "
        "sms skipped: the person has no phone to send to)"
    ]


def test_when_no_channel_would_do_the_step_is_skipped_with_the_reasons_and_the_trip_goes_on(
    tmp_path: Path, manual_clock: ManualClock, segments: None
) -> None:
    journeys(tmp_path, RESCUE)
    abandon("dan", phone="+33612345678", email_consent="unsubscribed")  # and no SMS opt-in
    [skipped] = deliveries()
    reason = (
        "channel preferred: no channel would do (segment frequent-abandoners: sms, email; "
        "sms skipped: no consent (sms requires explicit opt-in); "
        "email skipped: no consent (email unsubscribed))"
    )
    assert (skipped.status, skipped.error, skipped.content) == (models.SKIPPED, reason, {})
    assert skipped.channel == "sms"  # the segment's first choice, the one it would have been
    [trip] = instances()
    assert trip.status == "completed"  # went on past the send to the end
    assert "skipped (nothing sent)" in shown(skipped) and reason in shown(skipped)
    with session_scope() as session:
        story = timeline.render(timeline.timeline(session, "rescue"))
    assert f"send       sms: {reason} (skipped)" in story


def test_a_person_in_no_segment_listing_channels_is_skipped(
    tmp_path: Path, manual_clock: ManualClock
) -> None:
    journeys(tmp_path, WELCOME)  # no segment file loaded: nobody is in a segment
    route(person_at("eve"), track_at("Signed Up", user="eve"))
    [skipped] = deliveries()
    assert skipped.status == models.SKIPPED
    assert skipped.error == (
        "channel preferred: no channel, none of the person's segments lists channels"
    )


def test_the_lifecycle_stage_decides_when_no_other_segment_lists_channels(
    tmp_path: Path, manual_clock: ManualClock, segments: None
) -> None:
    journeys(tmp_path, WELCOME)
    route(
        person_at("fay", phone="+33612345678", sms_opt_in=True), track_at("Signed Up", user="fay")
    )
    [sent] = deliveries()
    # Stage `new` lists email only: SMS, though allowed, is not tried.
    assert sent.channel == "email"
    assert channel_history(sent) == ["channel preferred → email (segment new: email)"]


def test_a_channel_the_message_has_no_variant_for_is_passed_over(
    tmp_path: Path, manual_clock: ManualClock, segments: None
) -> None:
    journeys(
        tmp_path, RESCUE.replace('    sms: {text: "SMS {{ profile.traits.first_name }}"}\n', "")
    )
    abandon("gus", phone="+33612345678", sms_opt_in=True)
    [sent] = deliveries()
    assert sent.channel == "email"
    assert channel_history(sent) == [
        "channel preferred → email (segment frequent-abandoners: sms, email; "
        "sms skipped: message rescue has no sms variant)"
    ]


SCENARIOS = """
id: preferred-tests
name: Preferred channel in journey tests
trigger: {event: Signed Up}
messages:
  hello:
    email: {subject: Hello, html: "<p>Hello</p>"}
    sms: {text: Hello}
steps:
  - send: {channel: preferred, message: hello}
tests:
  - name: an abandoner who opted in to SMS gets the SMS
    profile: {traits: {sms_opt_in: true}, phone: "+33612345678", email: a@example.com}
    events:
      - {at: 0s, event: Cart Abandoned, properties: {total: 30}}
      - {at: 1m, event: Cart Abandoned, properties: {total: 40}}
      - {at: 2m, event: Signed Up}
    expect: [{channel: sms, contains: {text: Hello}}]
  - name: without the opt-in, the e-mail
    profile: {phone: "+33612345678", email: b@example.com}
    events:
      - {at: 0s, event: Cart Abandoned, properties: {total: 30}}
      - {at: 1m, event: Cart Abandoned, properties: {total: 40}}
      - {at: 2m, event: Signed Up}
    expect: [{channel: email, contains: {subject: Hello}}]
"""


def test_journey_tests_simulate_the_segments_a_preferred_send_chooses_from(
    tmp_path: Path,
) -> None:
    file = tmp_path / "preferred.yaml"
    file.write_text(SCENARIOS, encoding="utf-8")
    result = subprocess.run(
        [CARILLON, "journeys", "test", str(file)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed, 0 failed" in result.stdout
