"""Frequency caps per channel per person, across journeys: what counts, when a capped message
goes, defer or drop, journey overrides, priority, transactional journeys, and two workers
claiming at once (PostgreSQL: the profile row lock; SQLite: one writer at a time)."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest

from app.clock import ManualClock
from app.db import session_scope
from app.delivery import checks, models, service
from app.delivery.models import Delivery
from app.journeys.definition import Cap, parse_cap
from app.settings import Settings
from tests.delivery.conftest import SENT_OR_DRY, journey_yaml, refusal_at_start
from tests.helpers import (
    by_journey,
    configure,
    deliver,
    deliveries,
    held,
    load,
    person,
    route,
    row,
    track_now,
)

DAY = timedelta(days=1)


@pytest.fixture
def capped(settings_env: pytest.MonkeyPatch, manual_clock: ManualClock) -> ManualClock:
    configure(settings_env, frequency_caps="email=1/24h")
    return manual_clock


# --------------------------------------------------------------------------- syntax


def test_cap_syntax() -> None:
    assert parse_cap("1/24h") == Cap(1, DAY, "1/24h")
    assert parse_cap(" 3 / 7d ") == Cap(3, timedelta(days=7), "3/7d")
    for bad, says in [
        ("1/24", "not a duration"),
        ("0/24h", "at least 1 message"),
        ("one/24h", "not a frequency cap"),
        ("24h", "not a frequency cap"),
        ("1/0h", "greater than zero"),
        ("1/1 day", "did you mean '1d'?"),
    ]:
        with pytest.raises(ValueError, match=says):
            parse_cap(bad)


def test_caps_setting() -> None:
    parsed = Settings(frequency_caps="email=1/24h+3/7d, sms=1/24h").caps_by_channel()
    assert parsed == {
        "email": (parse_cap("1/24h"), parse_cap("3/7d")),
        "sms": (parse_cap("1/24h"),),
    }
    assert Settings().caps_by_channel() == {}  # no caps unless configured


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("email=1/24", "should be channel=value, e.g. email=1/24h+3/7d,meta_audience=1/24h"),
        ("email=0/24h", "should be channel=value"),
        ("email=1/24h+", "should be channel=value"),
        ("email", "should be channel=value"),
        (
            "mail=1/24h",
            "unknown channel 'mail'; one of: email, meta_audience, meta_capi, sms, "
            "webhook, whatsapp",
        ),
    ],
)
def test_a_bad_caps_setting_is_refused_at_start(
    settings_env: pytest.MonkeyPatch, value: str, says: str
) -> None:
    assert says in refusal_at_start(settings_env, "CARILLON_FREQUENCY_CAPS", value)


# --------------------------------------------------------------------------- across journeys


def test_a_cap_counts_every_journey_and_defers_until_the_window_frees(
    capped: ManualClock, tmp_path: Path
) -> None:
    load(tmp_path, journey_yaml("cart", "Cart Abandoned"), journey_yaml("promo", "Promo Started"))
    route(person("ada"), track_now("ada", "Cart Abandoned"))
    first = deliver(by_journey("cart").id)
    assert first.status in SENT_OR_DRY and first.sent_at == capped.now()

    capped.advance(timedelta(hours=3))
    route(track_now("ada", "Promo Started"))
    second = deliver(by_journey("promo").id)
    assert (second.status, second.attempts) == (models.PENDING, 0)
    assert second.next_attempt_at == first.sent_at + DAY
    assert "frequency cap email 1/24h" in (second.error or "")
    [(kind, detail)] = held(second.id)
    assert kind == "deferred" and "frequency cap email 1/24h" in (detail or "")

    # Someone else is not capped by Ada's messages, nor is Ada on another channel.
    route(person("bob"), track_now("bob", "Promo Started"))
    bob = [d for d in deliveries() if d.journey_id == "promo" and d.id != second.id][0]
    assert deliver(bob.id).status in SENT_OR_DRY

    capped.advance(first.sent_at + DAY - timedelta(seconds=1) - capped.now())
    assert deliver(second.id).status == models.PENDING  # not due yet: nothing happens
    capped.advance(timedelta(seconds=1))
    done = deliver(second.id)
    assert done.status in SENT_OR_DRY and done.attempts == 1


def test_several_rules_the_latest_to_free_decides(
    settings_env: pytest.MonkeyPatch, manual_clock: ManualClock, tmp_path: Path
) -> None:
    configure(settings_env, frequency_caps="email=1/24h+2/7d")
    load(tmp_path, journey_yaml("daily", "Tick"))
    start = manual_clock.now()
    route(person("ada"))
    for day in range(2):
        manual_clock.advance(start + day * DAY - manual_clock.now())
        route(track_now("ada", "Tick"))
        assert deliver(deliveries()[-1].id).status in SENT_OR_DRY
    manual_clock.advance(timedelta(days=1, hours=1))
    route(track_now("ada", "Tick"))
    third = deliver(deliveries()[-1].id)
    # 1/24h allows it again, 2/7d only once the first of the two leaves the week.
    assert third.next_attempt_at == start + timedelta(days=7)
    assert "frequency cap email 2/7d" in (third.error or "")


def test_failed_and_cancelled_messages_do_not_count(capped: ManualClock, tmp_path: Path) -> None:
    load(tmp_path, journey_yaml("a", "A"), journey_yaml("b", "B"))
    route(person("ada"), track_now("ada", "A"), track_now("ada", "B"))
    with session_scope() as session:
        first = session.get(Delivery, by_journey("a").id)
        assert first is not None
        first.status, first.error = models.FAILED, "HTTP 400: invalid address"
    assert deliver(by_journey("b").id).status in SENT_OR_DRY


# --------------------------------------------------------------------------- journey settings


def test_drop_suppresses_with_the_reason(capped: ManualClock, tmp_path: Path) -> None:
    load(
        tmp_path,
        journey_yaml("cart", "Cart Abandoned"),
        journey_yaml("flash", "Flash Sale", policy="on_cap: drop\n"),
    )
    route(person("ada"), track_now("ada", "Cart Abandoned"), track_now("ada", "Flash Sale"))
    assert deliver(by_journey("cart").id).status in SENT_OR_DRY
    dropped = deliver(by_journey("flash").id)
    assert (dropped.status, dropped.next_attempt_at) == (models.SUPPRESSED, None)
    assert dropped.error == "suppressed: frequency cap email 1/24h"
    assert held(dropped.id) == [("suppressed", "frequency cap email 1/24h")]
    capped.advance(2 * DAY)
    assert deliver(dropped.id).status == models.SUPPRESSED  # never retried


def test_a_journey_can_replace_the_cap_for_its_own_messages(
    capped: ManualClock, tmp_path: Path
) -> None:
    load(
        tmp_path,
        journey_yaml("cart", "Go"),
        journey_yaml("digest", "Go", policy='caps: {email: ["2/24h"]}\n'),
        journey_yaml("alerts", "Go", policy="caps: {email: []}\n"),
        journey_yaml("promo", "Go"),
    )
    route(person("ada"), track_now("ada", "Go"))
    outcome = {}
    for journey_id in ("cart", "digest", "alerts", "promo"):
        outcome[journey_id] = deliver(by_journey(journey_id).id).status
    # digest: 1 sent so far < 2; alerts: uncapped; promo: the global 1/24h, with 3 sent.
    assert outcome == {
        "cart": models.DRY_RUN,
        "digest": models.DRY_RUN,
        "alerts": models.DRY_RUN,
        "promo": models.PENDING,
    }


def test_transactional_messages_are_never_capped_but_count(
    capped: ManualClock, tmp_path: Path
) -> None:
    load(
        tmp_path,
        journey_yaml("receipt", "Order Completed", policy="kind: transactional\n"),
        journey_yaml("upsell", "Order Completed"),
    )
    route(person("ada"), track_now("ada", "Order Completed"), track_now("ada", "Order Completed"))
    receipts = [d for d in deliveries() if d.journey_id == "receipt"]
    assert [deliver(d.id).status for d in receipts] == [models.DRY_RUN, models.DRY_RUN]
    upsells = [d for d in deliveries() if d.journey_id == "upsell"]
    assert [deliver(d.id).status for d in upsells] == [models.PENDING, models.PENDING]


# --------------------------------------------------------------------------- priority


def test_the_last_slot_is_kept_for_a_higher_priority_message_that_is_due(
    capped: ManualClock, tmp_path: Path
) -> None:
    load(
        tmp_path,
        journey_yaml("newsletter", "Go"),
        journey_yaml("cart", "Go", policy="priority: 10\n"),
    )
    route(person("ada"), track_now("ada", "Go"))
    low = deliver(by_journey("newsletter").id)  # claimed first, yet yields
    assert low.status == models.PENDING
    assert "frequency cap email 1/24h (1 higher-priority message(s) due first)" in (low.error or "")
    assert low.next_attempt_at == capped.now() + DAY
    high = deliver(by_journey("cart").id)
    assert high.status == models.DRY_RUN


def test_equal_priority_is_first_come_first_served(capped: ManualClock, tmp_path: Path) -> None:
    load(tmp_path, journey_yaml("a", "Go"), journey_yaml("b", "Go"))
    route(person("ada"), track_now("ada", "Go"))
    assert deliver(by_journey("b").id).status == models.DRY_RUN
    assert deliver(by_journey("a").id).status == models.PENDING


def test_a_higher_priority_message_not_yet_due_keeps_nothing(
    capped: ManualClock, tmp_path: Path
) -> None:
    load(
        tmp_path,
        journey_yaml("newsletter", "Go"),
        journey_yaml("cart", "Go", policy="priority: 10\n"),
    )
    route(person("ada"), track_now("ada", "Go"))
    with session_scope() as session:  # e.g. a retry after a provider 503, due in an hour
        later = session.get(Delivery, by_journey("cart").id)
        assert later is not None
        later.next_attempt_at = capped.now() + timedelta(hours=1)
    assert deliver(by_journey("newsletter").id).status == models.DRY_RUN


# --------------------------------------------------------------------------- two workers at once


def test_two_workers_sending_to_one_person_at_once_send_one(
    capped: ManualClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both claims are made (two `sending` rows, neither committed) before either counts. On
    PostgreSQL the second count waits for the first transaction's profile lock and then sees
    its row; without the lock both would count zero and both send. SQLite runs one writer at a
    time, so there the second claim itself waits for the first commit."""
    load(tmp_path, journey_yaml("a", "Go"), journey_yaml("b", "Go"))
    route(person("ada"), track_now("ada", "Go"))
    ids = [d.id for d in deliveries()]
    with session_scope() as session:
        postgres = session.get_bind().dialect.name == "postgresql"
    both_claimed = threading.Barrier(2, timeout=30)

    def rendezvous(context: checks.SendContext) -> checks.Verdict:
        if postgres:
            both_claimed.wait()
        return None

    monkeypatch.setattr(checks, "CHECKS", [*checks.CHECKS[:2], rendezvous, *checks.CHECKS[2:]])
    errors: list[BaseException] = []

    def work(delivery_id: int) -> None:
        try:
            service.deliver(delivery_id)
        except BaseException as exc:  # surfaced below: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == [] and not any(t.is_alive() for t in threads)
    statuses = sorted(row(i).status for i in ids)
    assert statuses == [models.DRY_RUN, models.PENDING]
