"""A started broadcast sends each person of the audience as it was at start exactly once, at
their own local time, within its rate, through the same send-time checks as any marketing
message; a pause, a cancel or a failed chunk never sends anybody twice nor leaves anyone out."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from app import clock, scheduler
from app.broadcasts import control, progress, sending
from app.broadcasts.catalog import definition
from app.broadcasts.models import (
    PENDING,
    QUEUED,
    RUNNING,
    SKIPPED,
    WITHDRAWN,
    Broadcast,
    Recipient,
)
from app.db import session_scope
from app.delivery import models as status_of
from app.delivery import outbox
from app.profiles.models import USER_ID, Identity
from tests.broadcasts.conftest import Write, at_clock, cli, newsletter, recipients
from tests.helpers import (
    configure,
    deliver,
    deliveries,
    held,
    instances,
    load,
    order,
    person_at,
    route,
)


def customers(*users: str, **traits: Any) -> None:
    """People who ordered at T0: the lifecycle's `active` stage."""
    for user in users:
        route(person_at(user, **traits), order(minutes=1, user=user))


def start(broadcast_id: str = "november") -> None:
    with session_scope() as session:
        found, issues = definition(session, broadcast_id)
        assert found is not None, issues
        control.start(session, found)


def users_of(profile_ids: list[str]) -> list[str]:
    with session_scope() as session:
        rows = session.execute(
            select(Identity.profile_id, Identity.value).where(
                Identity.kind == USER_ID, Identity.profile_id.in_(profile_ids)
            )
        )
        users = {profile_id: value for profile_id, value in rows}
    return [users[profile_id] for profile_id in profile_ids]


def planned() -> Counter[str]:
    """How many broadcast messages each person (by userId) was planned."""
    rows = [d.profile_id for d in deliveries() if d.journey_id == "broadcast:november"]
    return Counter(users_of(rows))


def shown(broadcast_id: str = "november") -> progress.Progress:
    with session_scope() as session:
        found = progress.one(session, broadcast_id)
    assert found is not None
    return found


def test_the_audience_is_taken_at_start_and_each_person_gets_one_message(
    manual_clock: clock.ManualClock, write: Write
) -> None:
    customers("ann", "bob", "cyd")
    write()
    start()
    customers("late")  # joins the segment after the start: not in this broadcast

    scheduler.send_broadcasts()
    assert planned() == Counter()  # not 09:00 yet
    at_clock(manual_clock, "2026-11-03T09:00:00+00:00")
    scheduler.send_broadcasts()
    scheduler.send_broadcasts()  # a second tick finds nobody left and ends it

    assert planned() == Counter({"ann": 1, "bob": 1, "cyd": 1})
    [message] = [d for d in deliveries() if users_of([d.profile_id]) == ["ann"]]
    assert message.content["subject"] == "News for Alice"
    assert message.step_path == "message:news" and message.instance_id is None
    done = shown()
    assert (done.state, done.total, done.queued, done.pending) == ("done", 3, 3, 0)
    assert done.deliveries == {"pending": 3}  # in the outbox, queued for the e-mail worker


def test_nine_in_the_morning_is_each_persons_own_nine(
    manual_clock: clock.ManualClock, write: Write
) -> None:
    customers("paris", timezone="Europe/Paris")
    customers("utc")  # no timezone trait: CARILLON_DEFAULT_TIMEZONE (UTC)
    customers("newyork", timezone="America/New_York")
    write(at="2026-11-03T09:00")
    start()

    at_clock(manual_clock, "2026-11-03T07:59:00+00:00")
    sending.send_due()
    assert planned() == Counter()
    at_clock(manual_clock, "2026-11-03T08:00:00+00:00")  # 09:00 in Paris (CET)
    sending.send_due()
    assert planned() == Counter({"paris": 1})
    at_clock(manual_clock, "2026-11-03T13:59:00+00:00")
    sending.send_due()
    assert planned() == Counter({"paris": 1, "utc": 1})
    at_clock(manual_clock, "2026-11-03T14:00:00+00:00")  # 09:00 in New York (EST)
    sending.send_due()
    assert planned() == Counter({"paris": 1, "utc": 1, "newyork": 1})


def test_an_offset_sends_at_one_instant_for_everybody(
    manual_clock: clock.ManualClock, write: Write
) -> None:
    customers("paris", timezone="Europe/Paris")
    customers("newyork", timezone="America/New_York")
    write(at="2026-11-03T09:00:00+01:00")
    start()
    at_clock(manual_clock, "2026-11-03T08:00:00+00:00")
    sending.send_due()
    assert planned() == Counter({"paris": 1, "newyork": 1})


def test_the_rate_spreads_the_sends_and_pause_then_resume_sends_everyone_once(
    manual_clock: clock.ManualClock, write: Write
) -> None:
    users = [f"u{i}" for i in range(7)]
    customers(*users)
    write(at="2026-11-03T09:00:00Z", extra="rate: 2/s\n")
    start()
    at_clock(manual_clock, "2026-11-03T09:00:00+00:00")

    assert sending.send_due() == 2  # one second's worth
    assert sending.send_due() == 0  # nothing more until time passes
    with session_scope() as session:
        control.pause(session, "november")
    manual_clock.advance(timedelta(seconds=30))
    assert sending.send_due() == 0 and sum(planned().values()) == 2
    assert shown().state == "paused"
    with session_scope() as session:
        control.resume(session, "november")
    manual_clock.advance(timedelta(seconds=30))  # tokens do not pile up: at most 2 a tick
    assert sending.send_due() == 2
    manual_clock.advance(timedelta(seconds=1))
    assert sending.send_due() == 2
    manual_clock.advance(timedelta(seconds=1))
    assert sending.send_due() == 1
    manual_clock.advance(timedelta(seconds=1))
    assert sending.send_due() == 0

    assert planned() == Counter(dict.fromkeys(users, 1))
    assert shown().state == "done"


def test_a_chunk_that_fails_half_way_is_sent_again_whole_and_once(
    manual_clock: clock.ManualClock, write: Write, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = [f"u{i}" for i in range(6)]
    customers(*users)
    write(at="2026-11-03T09:00:00Z")
    start()
    at_clock(manual_clock, "2026-11-03T09:00:00+00:00")
    real, calls = outbox.plan_without_trip, []

    def dies_on_the_fourth(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[1])
        if len(calls) == 4:
            raise ConnectionError("the database went away mid-chunk")
        return real(*args, **kwargs)

    monkeypatch.setattr(outbox, "plan_without_trip", dies_on_the_fourth)
    with pytest.raises(ConnectionError):
        sending.send_due()
    # The chunk rolled back whole: no message, nobody marked, nothing queued.
    assert planned() == Counter()
    assert {r.state for r in recipients().values()} == {PENDING}

    monkeypatch.setattr(outbox, "plan_without_trip", real)
    assert sending.send_due() == 6
    assert planned() == Counter(dict.fromkeys(users, 1))
    assert {r.state for r in recipients().values()} == {QUEUED}


def test_a_recipient_put_back_to_pending_is_not_sent_a_second_message(
    manual_clock: clock.ManualClock, write: Write
) -> None:
    customers("ann", "bob")
    write(at="2026-11-03T09:00:00Z")
    start()
    at_clock(manual_clock, "2026-11-03T09:00:00+00:00")
    sending.send_due()
    with session_scope() as session:  # a state lost by hand, the outbox row still there
        session.execute(update(Recipient).values(state=PENDING, delivery_id=None))
        session.execute(update(Broadcast).values(state=RUNNING, finished_at=None))
    sending.send_due()
    assert planned() == Counter({"ann": 1, "bob": 1})
    assert {r.state for r in recipients().values()} == {QUEUED}
    assert all(r.delivery_id is not None for r in recipients().values())


def test_schedulers_racing_on_one_broadcast_plan_each_person_once(
    manual_clock: clock.ManualClock, write: Write
) -> None:
    users = [f"u{i}" for i in range(30)]
    customers(*users)
    write(at="2026-11-03T09:00:00Z")
    start()
    at_clock(manual_clock, "2026-11-03T09:00:00+00:00")
    failures: list[BaseException] = []

    def tick() -> None:
        try:
            sending.send_due(batch_size=4)
        except BaseException as exc:  # noqa: BLE001 (reported by the assertion below)
            failures.append(exc)

    threads = [threading.Thread(target=tick) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sending.send_due()  # whatever a skipped lock left for the next tick
    assert failures == []
    assert planned() == Counter(dict.fromkeys(users, 1))


def test_people_without_consent_are_skipped_with_the_reason(
    manual_clock: clock.ManualClock, write: Write
) -> None:
    customers("ann")
    customers("optout", email_consent="unsubscribed")
    write(at="2026-11-03T09:00:00Z")
    start()
    at_clock(manual_clock, "2026-11-03T09:00:00+00:00")
    sending.send_due()

    assert planned() == Counter({"ann": 1})
    [skipped] = [r for r in recipients().values() if r.state == SKIPPED]
    assert users_of([skipped.profile_id]) == ["optout"]
    assert skipped.reason is not None and skipped.reason.startswith("no consent")
    assert shown().skipped_because == {skipped.reason: 1}


def test_everyone_with_consent_means_those_the_channel_may_reach_at_start(
    manual_clock: clock.ManualClock, write: Write
) -> None:
    customers("ann")
    route(person_at("newcomer"))  # no order: not active, but e-mail consent by default
    route(person_at("optout", email_consent="unsubscribed"))
    route({"type": "identify", "userId": "nomail", "traits": {"first_name": "N"}})
    write(audience="{channel_consent: email}", at="2026-11-03T09:00:00Z")
    start()
    assert sorted(users_of(list(recipients()))) == ["ann", "newcomer"]


def test_a_broadcast_message_is_marketing_at_send_time(
    manual_clock: clock.ManualClock, write: Write, settings_env: pytest.MonkeyPatch
) -> None:
    """Unlike a transactional send (no trip either), quiet hours and consent hold it."""
    configure(settings_env, quiet_hours="email=08:00-10:00")
    customers("ann", "bob")
    write(at="2026-11-03T09:00:00Z")
    start()
    at_clock(manual_clock, "2026-11-03T09:00:00+00:00")
    sending.send_due()
    ann, bob = sorted(deliveries(), key=lambda d: users_of([d.profile_id]))
    route({"type": "identify", "userId": "bob", "traits": {"email_consent": "unsubscribed"}})

    assert deliver(ann.id).status == status_of.PENDING
    assert held(ann.id)[0][0] == "deferred" and "quiet hours" in str(held(ann.id)[0][1])
    assert deliver(bob.id).status == status_of.SUPPRESSED


def test_cancel_withdraws_those_still_to_come_and_the_messages_not_gone(
    manual_clock: clock.ManualClock, write: Write
) -> None:
    customers("paris", timezone="Europe/Paris")
    customers("newyork", timezone="America/New_York")
    write(at="2026-11-03T09:00")
    start()
    at_clock(manual_clock, "2026-11-03T08:00:00+00:00")
    sending.send_due()  # Paris is planned, New York still to come
    with session_scope() as session:
        control.cancel(session, "november")
    at_clock(manual_clock, "2026-11-03T14:00:00+00:00")
    sending.send_due()

    [paris] = deliveries()
    assert paris.status == status_of.CANCELLED and "broadcast november cancelled" in str(
        paris.error
    )
    assert {r.state for r in recipients().values()} == {QUEUED, WITHDRAWN}
    final = shown()
    assert (final.state, final.withdrawn, final.pending) == ("cancelled", 1, 0)
    with session_scope() as session, pytest.raises(control.Refused, match="is cancelled"):
        control.resume(session, "november")


WINBACK = """\
id: winback
name: Win-back with an A/B test
trigger: {event: Never Tracked}
steps:
  - split:
      - name: a
        weight: 50
        steps:
          - send: {channel: email, subject: "A", html: "<p>A</p>", text: A}
      - name: b
        weight: 50
        steps:
          - send: {channel: email, subject: "B", html: "<p>B</p>", text: B}
"""


def test_a_journey_broadcast_starts_one_trip_each_and_its_split_is_an_ab_test(
    manual_clock: clock.ManualClock, write: Write, tmp_path: Path
) -> None:
    journey_dir = tmp_path / "journeys"
    journey_dir.mkdir()
    load(journey_dir, WINBACK)
    users = [f"u{i}" for i in range(12)]
    customers(*users)
    text = newsletter(at="2026-11-03T09:00:00Z").replace(
        "send: {channel: email, message: news}", "send: {journey: winback}"
    )
    write(text.split("messages:")[0])  # a journey broadcast needs no messages
    start()
    at_clock(manual_clock, "2026-11-03T09:00:00+00:00")
    sending.send_due()
    sending.send_due()

    trips = instances()
    assert sorted(users_of([t.profile_id for t in trips])) == sorted(users)
    assert {t.journey_id for t in trips} == {"winback"}
    assert {t.arm for t in trips} == {"a", "b"}  # both arms drawn, per person as always
    messages = [d for d in deliveries() if d.journey_id == "winback"]
    assert len(messages) == 12 and {d.instance_id for d in messages} == {t.id for t in trips}
    done = shown()
    assert (done.state, done.entered, done.queued, done.settled) == ("done", 12, 0, 12)
    assert cli("broadcasts", "status", "november").stdout.count("entered the journey 12") == 1


def test_a_journey_broadcast_keeps_the_journeys_re_entry_rule(
    manual_clock: clock.ManualClock, write: Write, tmp_path: Path
) -> None:
    journey_dir = tmp_path / "journeys"
    journey_dir.mkdir()
    load(journey_dir, WINBACK)  # re_entry: never (the default)
    customers("ann", "bob")
    body = newsletter(at="2026-11-03T09:00:00Z").split("messages:")[0]
    write(body.replace("send: {channel: email, message: news}", "send: {journey: winback}"))
    start()
    second = body.replace("id: november", "id: again").replace(
        "send: {channel: email, message: news}", "send: {journey: winback}"
    )
    write(second.replace("2026-11-03T09:00:00Z", "2026-11-03T10:00:00Z"), name="again.yaml")
    start("again")
    at_clock(manual_clock, "2026-11-03T10:00:00+00:00")
    sending.send_due()

    assert len(instances()) == 2  # once each, by the first broadcast
    again = recipients("again").values()
    assert {r.state for r in again} == {SKIPPED}
    assert {r.reason for r in again} == {
        "already on journey winback, or its re_entry keeps them out"
    }
