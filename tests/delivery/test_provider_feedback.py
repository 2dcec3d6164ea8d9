"""What providers say about a person, applied to the profile; audiences undone on exit.

In-process, on the real database and queue, against the local Twilio and Graph servers:
Twilio's 21610 (the person replied STOP) records an SMS opt-out and 21211 (or a number that is
not E.164) marks the phone invalid, so the next message is suppressed before any call. A
`send` step on `meta_audience` with `remove_on_exit: true` takes the person out of the
audience again when the trip exits or reaches its goal.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from app.clock import ManualClock
from app.db import session_scope
from app.delivery import history
from app.journeys import catalog
from app.journeys.language.files import JourneyInvalid, parse_journey
from app.profiles import repository
from app.sweeper import sweep_deliveries
from tests.helpers import (
    Pipeline,
    alice,
    at,
    configure,
    deliveries,
    instances,
    order,
    send,
    sha256,
)
from tests.providers.meta import TEST_AUDIENCE_ID, MetaGraphServer, graph_error
from tests.providers.twilio import TwilioServer

PHONE = "+33612345678"
PROMO = """\
id: promo
name: Promo SMS
trigger: {event: Promo Started}
re_entry: always
steps:
  - send: {channel: sms, text: "-20 % ce week-end"}
"""


def promo(minutes: int) -> dict[str, Any]:
    return {"type": "track", "userId": "alice", "event": "Promo Started", "timestamp": at(minutes)}


def identify(minutes: int, **traits: Any) -> dict[str, Any]:
    return {"type": "identify", "userId": "alice", "timestamp": at(minutes), "traits": traits}


def traits() -> dict[str, Any]:
    [delivery] = deliveries()[:1]
    with session_scope() as session:
        return repository.traits_of(session, delivery.profile_id)


def story(delivery_id: int) -> list[tuple[str, str]]:
    with session_scope() as session:
        return [(e.kind, e.source) for e in history.of(session, delivery_id)]


@dataclass(frozen=True)
class Providers:
    twilio: TwilioServer
    meta: MetaGraphServer


@pytest.fixture(scope="module")
def _stand_ins() -> Iterator[Providers]:
    with TwilioServer() as twilio, MetaGraphServer() as meta:
        yield Providers(twilio, meta)


@pytest.fixture
def providers(settings_env: pytest.MonkeyPatch, _stand_ins: Providers) -> Providers:
    """SMS and Meta configured with credentials and pointed at their stand-ins."""
    for server in (_stand_ins.twilio, _stand_ins.meta):
        server.reset()
    overrides = {**_stand_ins.twilio.settings_overrides(), **_stand_ins.meta.settings_overrides()}
    configure(settings_env, overrides)
    return _stand_ins


@pytest.fixture
def promo_journey(tmp_path: Path) -> None:
    (tmp_path / "promo.yaml").write_text(PROMO)
    catalog.sync_directory(tmp_path)


# --------------------------------------------------------------------------- Twilio feedback


def test_a_stop_reported_by_twilio_opts_the_person_out_until_they_opt_in_again(
    manual_clock: ManualClock, pipeline: Pipeline, providers: Providers, promo_journey: None
) -> None:
    twilio = providers.twilio
    twilio.unsubscribed.add(PHONE)
    send(pipeline, alice(), promo(1))

    [refused] = deliveries()
    assert (refused.status, refused.error) == (
        "failed",
        "21610: Attempt to send to unsubscribed recipient",
    )
    assert traits()["sms_consent"] == "opted_out"
    assert ("sms_opted_out", "sms") in story(refused.id)

    # The next message is suppressed before any provider call.
    twilio.unsubscribed.clear()
    send(pipeline, promo(2))
    assert [d.status for d in deliveries()] == ["failed", "suppressed"]
    assert deliveries()[1].error == "suppressed: sms opted out"
    assert len(twilio.requests) == 1

    # A newer explicit opt-in wins (last write by time), and the SMS goes out again.
    manual_clock.advance(timedelta(minutes=5))
    send(pipeline, identify(10, sms_consent="opted_in"), promo(11))
    assert [d.status for d in deliveries()] == ["failed", "suppressed", "sent"]
    assert len(twilio.requests) == 2


@pytest.mark.parametrize(
    ("phone", "unreachable", "calls", "words"),
    [
        ("0612345678", False, 0, "is not in E.164 form"),
        ("+3361234567899", False, 0, "is not a valid number"),
        (PHONE, True, 1, "21211: The 'To' number +33612345678 is not a valid phone number."),
    ],
)
def test_an_invalid_phone_is_marked_and_never_tried_again(
    phone: str,
    unreachable: bool,
    calls: int,
    words: str,
    manual_clock: ManualClock,
    pipeline: Pipeline,
    providers: Providers,
    promo_journey: None,
) -> None:
    twilio = providers.twilio
    if unreachable:
        twilio.unreachable.add(phone)
    send(pipeline, identify(0, phone=phone, sms_opt_in=True), promo(1))

    [refused] = deliveries()
    assert refused.status == "failed"
    assert words in (refused.error or "")
    assert traits()["phone_valid"] is False
    assert ("phone_invalid", "sms") in story(refused.id)

    send(pipeline, promo(2))
    assert deliveries()[1].status == "suppressed"
    assert deliveries()[1].error == "suppressed: phone invalid"
    assert len(twilio.requests) == calls


# --------------------------------------------------------------------------- remove_on_exit

RETARGET = """\
id: retarget
name: Retarget likers until they buy
trigger: {event: Instagram Post Liked}
%(ending)s
steps:
  - send:
      channel: meta_audience
      audience_id: "%(audience)s"
      remove_on_exit: %(remove)s
%(more)s
"""


def like(minutes: int = 1) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": "alice",
        "event": "Instagram Post Liked",
        "timestamp": at(minutes),
    }


def retarget(tmp_path: Path, *, ending: str, remove: str = "true", more: str = "") -> None:
    values = {"ending": ending, "audience": TEST_AUDIENCE_ID, "remove": remove, "more": more}
    (tmp_path / "retarget.yaml").write_text(RETARGET % values)
    assert catalog.sync_directory(tmp_path) == []


ALICE_ROW = (sha256("alice@example.com"), sha256("33612345678"))


@pytest.mark.parametrize(
    ("ending", "more", "status"),
    [
        # The trip waits; the order makes it leave (exit_when).
        ("exit_when: {event: Order Completed}", "  - wait: 7d", "exited"),
        # The trip waits; the order is its goal.
        ("goal: {event: Order Completed}", "  - wait: 7d", "converted"),
        # The trip is already over when the order, within the goal's window, arrives.
        ("goal: {event: Order Completed, within: 7d}", "", "completed"),
    ],
)
def test_leaving_or_converting_takes_the_person_out_of_the_audience(
    ending: str,
    more: str,
    status: str,
    tmp_path: Path,
    manual_clock: ManualClock,
    pipeline: Pipeline,
    providers: Providers,
) -> None:
    meta = providers.meta
    retarget(tmp_path, ending=ending, more=more)
    send(pipeline, alice(), like())
    assert meta.members[TEST_AUDIENCE_ID] == {ALICE_ROW}
    # Ads consent withdrawn meanwhile: a removal is still made, never suppressed.
    send(pipeline, identify(2, ads_consent="denied"))

    send(pipeline, order(3))

    added, removal = deliveries()
    assert (added.step_path, added.status) == ("0", "sent")
    assert (removal.step_path, removal.channel, removal.status) == (
        "0/remove",
        "meta_audience",
        "sent",
    )
    assert removal.content == {"audience_id": TEST_AUDIENCE_ID, "operation": "remove"}
    [post, delete] = meta.requests
    assert (post.method, delete.method) == ("POST", "DELETE")
    assert delete.path == f"/v21.0/{TEST_AUDIENCE_ID}/users"
    assert json.loads(delete.body["payload"])["data"] == [list(ALICE_ROW)]
    for raw in ("alice@example.com", "alice%40example.com", "33612345678"):
        assert raw not in delete.text
    assert meta.members[TEST_AUDIENCE_ID] == set()
    assert instances()[0].status == status

    # Another order changes nothing: one removal per trip and step.
    send(pipeline, order(4))
    assert len(deliveries()) == 2 and len(meta.requests) == 2


def test_without_remove_on_exit_the_person_stays_in_the_audience(
    tmp_path: Path, manual_clock: ManualClock, pipeline: Pipeline, providers: Providers
) -> None:
    retarget(
        tmp_path, ending="exit_when: {event: Order Completed}", remove="false", more="  - wait: 7d"
    )
    send(pipeline, alice(), like())
    send(pipeline, order(3))
    assert [d.step_path for d in deliveries()] == ["0"]
    assert [r.method for r in providers.meta.requests] == ["POST"]
    assert instances()[0].status == "exited"


def test_an_addition_cancelled_by_the_exit_needs_no_removal(
    tmp_path: Path, manual_clock: ManualClock, pipeline: Pipeline, providers: Providers
) -> None:
    """Meta is down when the add is tried, so it waits for its retry; the order comes first:
    the add is cancelled, nothing was added and nothing is removed."""
    retarget(tmp_path, ending="exit_when: {event: Order Completed}", more="  - wait: 7d")
    providers.meta.fail_next(503, graph_error(2, "Service temporarily unavailable"))
    send(pipeline, alice(), like())
    [waiting] = deliveries()
    assert (waiting.status, waiting.attempts) == ("pending", 1)

    send(pipeline, order(3))

    [cancelled] = deliveries()
    assert (cancelled.status, cancelled.error) == (
        "cancelled",
        "cancelled: exit_when: Order Completed",
    )
    assert instances()[0].status == "exited"
    manual_clock.advance(timedelta(hours=1))
    sweep_deliveries(timedelta(0))
    pipeline.drain()
    assert len(providers.meta.requests) == 1 and providers.meta.members == {}


def test_a_dry_run_audience_is_undone_as_a_dry_run(
    tmp_path: Path, manual_clock: ManualClock, pipeline: Pipeline
) -> None:
    retarget(tmp_path, ending="exit_when: {event: Order Completed}", more="  - wait: 7d")
    send(pipeline, alice(), like())
    send(pipeline, order(3))
    added, removal = deliveries()
    assert (added.status, removal.status) == ("dry_run", "dry_run")
    assert removal.content == {"audience_id": TEST_AUDIENCE_ID, "operation": "remove"}


# --------------------------------------------------------------------------- validation


def _issues(text: str) -> list[str]:
    with pytest.raises(JourneyInvalid) as caught:
        parse_journey(text, "j.yaml")
    return [str(issue) for issue in caught.value.issues]


def test_remove_on_exit_on_another_channel_is_a_clear_error() -> None:
    text = (
        "id: j\nname: J\ntrigger: {event: X}\n"
        "steps:\n  - send: {channel: sms, text: hi, remove_on_exit: true}\n"
    )
    [issue] = _issues(text)
    assert "unknown key 'remove_on_exit' in send (sms)" in issue
    assert "hint: remove_on_exit is only for meta_audience" in issue


def test_remove_on_exit_must_be_a_boolean() -> None:
    text = (
        "id: j\nname: J\ntrigger: {event: X}\nsteps:\n"
        '  - send: {channel: meta_audience, audience_id: "1", remove_on_exit: "yes"}\n'
    )
    [issue] = _issues(text)
    assert "j.yaml:5:" in issue
    assert "remove_on_exit must be true or false, not" in issue


def test_remove_on_exit_is_read_and_in_the_json_schema() -> None:
    from app.journeys.definition import SendStep
    from app.journeys.schema import journey_schema

    text = (
        "id: j\nname: J\ntrigger: {event: X}\nsteps:\n"
        '  - send: {channel: meta_audience, audience_id: "1", remove_on_exit: true}\n'
    )
    [step] = parse_journey(text, "j.yaml").steps
    assert isinstance(step, SendStep) and step.remove_on_exit is True
    schema = json.dumps(journey_schema())
    assert '"remove_on_exit": {"type": "boolean"' in schema
