"""The fault matrix (issue #5): real `carillon api`, `worker` and `scheduler` processes on a
private PostgreSQL and Redis, each run with one fault injected. After each, counted at the
Twilio stand-in by recipient and in the database: every event answered 200 is processed, every
due delivery is made, none twice. `make test-faults` runs them (not part of `make test`)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker
from sqlalchemy import func, select

from app.broadcasts.models import DONE, PENDING, QUEUED, Broadcast, Recipient
from app.delivery.models import Delivery
from app.events.models import Event
from app.ops import broker_state
from tests.faults.harness import (
    FaultyTwilio,
    Rig,
    ingest,
    people_identify,
    post_until_accepted,
    rig,
    subscriptions,
)
from tests.faults.services import PrivatePostgres, PrivateRedis

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]

KILL_BATCH = 1000
PEOPLE = 300  # (b)–(e): enough to keep deliveries flowing through each fault


def report(fault: str, rig: Rig, expected: int) -> None:
    """One line per fault for the table in docs/delivery.md (shown with `-s`)."""
    requests = rig.twilio.requests_per_recipient()
    sent = rig.twilio.sent_per_recipient()
    print(
        f"\nFAULT {fault}: expected={expected} accepted_by_provider={sum(sent.values())} "
        f"recipients={len(sent)} duplicated={sum(n - 1 for n in sent.values() if n > 1)} "
        f"provider_requests={sum(requests.values())} statuses={dict(rig.statuses())}"
    )


def assert_each_sent_once(rig: Rig, people: int) -> None:
    assert dict(rig.statuses()) == {"sent": people}
    sent = rig.twilio.sent_per_recipient()
    assert len(sent) == people and set(sent.values()) == {1}
    assert rig.phones_with_status("sent") == set(sent)
    assert rig.events() == 2 * people and rig.unprocessed_events() == 0


def assert_sent_or_unknown(
    rig: Rig, people: int, unknown: set[int], events_per_person: int = 2
) -> None:
    """The ambiguous-window policy: what reached the provider is `sent`, or `unknown` when its
    worker never recorded the answer; nothing reached the provider twice."""
    assert rig.ids_with_status("unknown") == unknown
    # Counters compare missing keys as zero
    assert rig.statuses() == Counter(sent=people - len(unknown), unknown=len(unknown))
    assert set(rig.twilio.requests_per_recipient().values()) <= {1}
    sent = set(rig.twilio.sent_per_recipient())
    recorded = rig.phones_with_status("sent")
    assert recorded <= sent
    assert sent - recorded <= rig.phones_with_status("unknown")
    assert rig.events() == events_per_person * people and rig.unprocessed_events() == 0


@pytest.fixture
def services(
    private_postgres: PrivatePostgres, private_redis: PrivateRedis
) -> tuple[PrivatePostgres, PrivateRedis]:
    return private_postgres, private_redis


def kill_mid_batch(r: Rig, twilio: FaultyTwilio, fault: str) -> None:
    """kill -9 the worker once 200 calls reached Twilio with one in flight, start another,
    and check that each of the KILL_BATCH deliveries went once or is visibly unknown."""
    r.wait_until(
        "mid-batch, a call in flight",
        lambda: len(twilio.requests) >= 200 and twilio.in_flight > 0,
    )
    r.kill("worker")
    abandoned = r.ids_with_status("sending")
    assert abandoned, "the kill was meant to land during provider calls"
    r.start("worker", "worker-restarted")
    r.settle(KILL_BATCH, timeout=150)
    report(fault, r, KILL_BATCH)
    assert_sent_or_unknown(r, KILL_BATCH, abandoned)


def test_a_worker_killed_mid_batch_of_1000(
    services: tuple[PrivatePostgres, PrivateRedis], tmp_path: Path
) -> None:
    twilio = FaultyTwilio(delay_seconds=0.02)  # calls last long enough to be cut
    with rig(*services, tmp_path, twilio) as r:
        r.identify(KILL_BATCH)
        ingest(r.carillon.base_url, subscriptions(range(KILL_BATCH)), size=250)
        kill_mid_batch(r, twilio, "a")


def test_a1000_a_worker_killed_mid_batch_at_provider_batch_size(
    services: tuple[PrivatePostgres, PrivateRedis], tmp_path: Path
) -> None:
    """(a) with send jobs claiming up to 1,000 rows (CARILLON_DELIVERY_BATCH_SIZE) and Twilio
    answering in 50 ms. The 1,000 deliveries are all planned first, by a worker consuming
    only the events queue, so the sending worker's first jobs find them all due and claim
    them in batches of up to 1,000; it is killed once 200 have reached Twilio."""
    twilio = FaultyTwilio(delay_seconds=0.05)
    with rig(*services, tmp_path, twilio, {"CARILLON_DELIVERY_BATCH_SIZE": "1000"}) as r:
        r.identify(KILL_BATCH)
        r.kill("worker")
        r.start("worker", "routing-only", queues=["events"])
        ingest(r.carillon.base_url, subscriptions(range(KILL_BATCH)), size=250)
        r.wait_until(
            "every delivery planned, none sent",
            lambda: r.unprocessed_events() == 0 and r.statuses() == Counter(pending=KILL_BATCH),
        )
        r.kill("worker")
        r.start("worker", "sending")
        kill_mid_batch(r, twilio, "a1000")


FLASH_SALE = """id: flash-sale
name: Flash sale
audience: {channel_consent: sms}
at: "AT"
rate: 50/s
send: {channel: sms, message: flash}
messages:
  flash:
    sms: {text: "Flash sale today, {{ profile.traits.first_name }}: -20 % on everything"}
"""


def test_f_worker_and_scheduler_killed_mid_broadcast(
    services: tuple[PrivatePostgres, PrivateRedis], tmp_path: Path
) -> None:
    """A broadcast to everyone with SMS consent at 50/s; once 100 reached Twilio, with calls
    in flight (answers held a second, so a chunk's sends are still out), the worker and the
    scheduler are killed together and started again. The recipients the dead scheduler was
    planning roll back and are planned once by the new one; the rows `sending` at the kill
    end `unknown`; everyone else is sent once."""
    broadcasts = tmp_path / "broadcasts"
    broadcasts.mkdir()
    twilio = FaultyTwilio(delay_seconds=1.0)
    settings = {"CARILLON_BROADCASTS_DIR": str(broadcasts)}
    with rig(*services, tmp_path, twilio, settings) as r:
        r.identify(PEOPLE)
        # Still to come when `start` checks it, however long the command takes to load.
        at = (datetime.now(UTC) + timedelta(seconds=20)).isoformat()
        (broadcasts / "flash-sale.yaml").write_text(FLASH_SALE.replace("AT", at))
        start = r.run(["broadcasts", "start", "flash-sale"], "broadcasts-start")
        assert start.popen.wait(120) == 0, start.tail()
        start.stop()
        r.wait_until(
            "mid-broadcast, calls in flight",
            lambda: len(twilio.requests) >= 100 and twilio.in_flight > 0,
        )
        r.kill("worker")
        r.kill("scheduler")
        abandoned = r.ids_with_status("sending")
        assert abandoned, "the kill was meant to land during provider calls"
        assert r.scalar(select(func.count()).where(Recipient.state == PENDING)) > 0, (
            "the kill was meant to land before the audience was all planned"
        )
        r.start("worker", "worker-restarted")
        r.start("scheduler", "scheduler-restarted")
        r.settle(PEOPLE, timeout=150)
        report("f", r, PEOPLE)
        assert_sent_or_unknown(r, PEOPLE, abandoned, events_per_person=1)
        assert r.scalar(select(Broadcast.state)) == DONE
        planned = select(func.count(func.distinct(Recipient.delivery_id)))
        assert r.scalar(planned.where(Recipient.state == QUEUED)) == PEOPLE


def test_b_redis_restarted_during_delivery(
    services: tuple[PrivatePostgres, PrivateRedis], tmp_path: Path
) -> None:
    postgres, redis = services
    twilio = FaultyTwilio(delay_seconds=0.01)
    with rig(postgres, redis, tmp_path, twilio) as r:
        r.identify(PEOPLE)
        ingest(r.carillon.base_url, subscriptions(range(PEOPLE)))
        r.wait_until("delivery under way", lambda: len(twilio.requests) >= 50)
        redis.stop()  # no persistence: every queued message is lost
        redis.start()
        r.settle(PEOPLE)
        report("b", r, PEOPLE)
        assert_each_sent_once(r, PEOPLE)


def test_c_postgres_stopped_for_10s_during_ingest_and_delivery(
    services: tuple[PrivatePostgres, PrivateRedis], tmp_path: Path
) -> None:
    postgres, _ = services
    twilio = FaultyTwilio(delay_seconds=0.01)
    with rig(*services, tmp_path, twilio) as r:
        r.identify(PEOPLE)
        batches = [subscriptions(range(i, min(i + 10, PEOPLE))) for i in range(0, PEOPLE, 10)]
        retried: list[int] = []

        def shop() -> None:  # a shop's steady traffic, resending as Segment SDKs do
            for batch in batches:
                retried.append(post_until_accepted(r.carillon.base_url, batch) > 1)
                time.sleep(0.1)

        client = threading.Thread(target=shop)
        client.start()
        r.wait_until("ingest and delivery under way", lambda: len(twilio.requests) >= 20)
        postgres.stop()
        time.sleep(10)  # the injected fault: ten seconds without a database
        postgres.start()
        client.join(120)
        assert not client.is_alive() and len(retried) == len(batches)
        assert any(retried), "the outage was meant to hit ingest"
        r.settle(PEOPLE, timeout=120)
        report("c", r, PEOPLE)
        # A worker holding a provider's answer keeps trying to write it until the database is
        # back, so the outage leaves no `unknown` row: each message sent once, and recorded.
        assert_each_sent_once(r, PEOPLE)


def test_d_every_queue_message_delivered_twice(
    services: tuple[PrivatePostgres, PrivateRedis], tmp_path: Path
) -> None:
    _, redis = services
    twilio = FaultyTwilio(delay_seconds=0.005)
    with rig(*services, tmp_path, twilio) as r:
        duplicates = Duplicator(r, redis.url)
        with duplicates.running():
            r.identify(PEOPLE)
            ingest(r.carillon.base_url, subscriptions(range(PEOPLE)))
            r.settle(PEOPLE)
        r.wait_until("every copy consumed", duplicates.idle)
        report("d", r, PEOPLE)
        assert (
            len(duplicates.copied_events) == 2 * PEOPLE
            and len(duplicates.copied_deliveries) == PEOPLE
        )
        assert_each_sent_once(r, PEOPLE)


def test_e_provider_answers_500_to_30_percent_of_calls(
    services: tuple[PrivatePostgres, PrivateRedis], tmp_path: Path
) -> None:
    twilio = FaultyTwilio(failure_rate=0.3)
    with rig(*services, tmp_path, twilio) as r:
        r.identify(PEOPLE)
        ingest(r.carillon.base_url, subscriptions(range(PEOPLE)))
        r.settle(PEOPLE, timeout=120)
        report("e", r, PEOPLE)
        assert_each_sent_once(r, PEOPLE)
        assert twilio.failures >= PEOPLE * 0.3 * 0.8
        assert len(twilio.requests) == PEOPLE + twilio.failures


# --------------------------------------------------------------------------- back-pressure


def test_redis_down_events_are_still_accepted_and_routed_once_it_is_back(
    services: tuple[PrivatePostgres, PrivateRedis], tmp_path: Path
) -> None:
    postgres, redis = services
    people = 20
    with rig(postgres, redis, tmp_path, FaultyTwilio()) as r:
        redis.stop()
        events = people_identify(range(people)) + subscriptions(range(people))
        assert post_until_accepted(r.carillon.base_url, events) == 1  # 200 at the first try
        assert r.events() == 2 * people  # stored, their enqueue failed
        ready = httpx.get(f"{r.carillon.base_url}/readyz", timeout=10)
        assert ready.status_code == 503 and "broker" in ready.json()["reason"]
        assert "after-commit hook failed" in r.carillon.processes[0].log.read_text()
        redis.start()
        r.settle(people)  # the sweeper hands the stored events over
        assert_each_sent_once(r, people)


def test_database_down_the_api_answers_503_with_retry_after_and_stores_nothing(
    services: tuple[PrivatePostgres, PrivateRedis], tmp_path: Path
) -> None:
    postgres, _ = services
    people = 20
    events = people_identify(range(people)) + subscriptions(range(people))
    with rig(*services, tmp_path, FaultyTwilio()) as r:
        postgres.stop()
        try:
            response = httpx.post(
                f"{r.carillon.base_url}/v1/batch",
                json={"batch": events},
                auth=("test-key", ""),
                timeout=30,
            )
            ready = httpx.get(f"{r.carillon.base_url}/readyz", timeout=30)
        finally:
            postgres.start()
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert response.json() == {
            "success": False,
            "code": "unavailable",
            "message": "database unavailable: retry later with the same messageIds",
        }
        assert ready.status_code == 503 and "database" in ready.json()["reason"]
        assert r.events() == 0  # nothing half-written
        assert post_until_accepted(r.carillon.base_url, events) == 1
        r.settle(people)
        assert_each_sent_once(r, people)


class Duplicator:
    """Delivers every queue message twice, from outside: each new event and delivery id the
    database shows is enqueued once more, on the same Redis, as a second copy of its job."""

    def __init__(self, rig: Rig, redis_url: str) -> None:
        self.rig = rig
        self.broker = RedisBroker(url=redis_url, namespace="carillon", middleware=[])
        self.copied_events: set[int] = set()
        self.copied_deliveries: set[tuple[int, str]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _copy(self, queue: str, actor: str, arg: object) -> None:
        self.broker.enqueue(Message(queue, actor, (arg,), {}, {}))

    def _pass(self) -> None:
        # Ids are not committed in id order (concurrent transactions): diff sets, not a maximum.
        with self.rig.engine.connect() as conn:
            events = set(conn.scalars(select(Event.id))) - self.copied_events
            rows = {(i, c) for i, c in conn.execute(select(Delivery.id, Delivery.channel))}
        if events:
            self._copy("events", "events.process", sorted(events))
            self.copied_events |= events
        for delivery_id, channel in rows - self.copied_deliveries:
            self._copy(channel, f"delivery.send_{channel}", delivery_id)
            self.copied_deliveries.add((delivery_id, channel))

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self._pass()
        self._pass()  # whatever appeared since the last pass

    def idle(self) -> bool:
        """Every copy consumed: nothing ready, delayed or held by a worker."""
        info = broker_state.inspect(self.broker, ["events", "sms"])
        return all(q.ready == q.delayed == q.in_flight == 0 for q in info.queues.values())

    @contextmanager
    def running(self) -> Iterator[None]:
        self._thread.start()
        try:
            yield
        finally:
            self._stop.set()
            self._thread.join()
