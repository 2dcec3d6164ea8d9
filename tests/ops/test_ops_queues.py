"""Queue state (`GET /ops/queues`, `carillon queues`) checked against a known load.

The load is built through the real stages (ingest, routing, timers, delivery) on a manual
clock, so every timestamp is known, and through the real broker of the pass (in-process or
Redis): nothing here fakes a row or a queue message.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from app.cli import app as cli
from app.clock import ManualClock
from app.db import session_scope
from app.delivery import service
from app.delivery.models import Delivery
from app.delivery.tasks import send_job
from app.events import routing
from app.events.schemas import SegmentEvent
from app.events.service import store
from app.journeys import catalog
from app.journeys.timers import fire_due
from app.ops import queues
from app.profiles import consent
from app.tasks import broker
from channels import registry
from tests.helpers import REPO, T0, bearer

S = T0 + timedelta(hours=3)  # the moment the figures are read


def at(clock: ManualClock, offset: timedelta) -> datetime:
    clock._now = S + offset
    return clock._now


def ingest(*events: dict[str, Any]) -> list[int]:
    """One store call: one row per event, one message on the `events` queue."""
    with session_scope() as session:
        return store(session, [SegmentEvent.model_validate(e) for e in events], "default")


def track(user: str, name: str, **properties: Any) -> dict[str, Any]:
    return {"type": "track", "userId": user, "event": name, "properties": properties}


def cart(user: str, **extra: Any) -> dict[str, Any]:
    return track(user, "Cart Abandoned", total=30, **extra)


def route(ids: list[int]) -> None:
    for event_id in ids:
        routing.process_one(event_id)


def opted_in(delivery: Delivery) -> int:
    """The person explicitly opted in to SMS (as of now), so their welcome SMS may go."""
    with session_scope() as session:
        consent.record(session, delivery.profile_id, "sms", "opted_in", T0, "test-opt-in")
    return delivery.id


def deliveries(channel: str) -> list[Delivery]:
    with session_scope() as session:
        return list(
            session.scalars(select(Delivery).where(Delivery.channel == channel).order_by("id"))
        )


M = timedelta(minutes=1)
SEC = timedelta(seconds=1)


@pytest.fixture
def known_load(manual_clock: ManualClock) -> Iterator[dict[str, Any]]:
    """The load every figure below is computed from, relative to S (the reading time)."""
    catalog.sync_directory(REPO / "journeys")
    clock = manual_clock
    # Erin's cart has no cart_url: when her wait fires (S-2m) the e-mail cannot be rendered,
    # so her delivery fails: a dead letter. The timer fires at S-2m, before the other carts
    # exist, so they stay pending (the clock is set per step; order does not matter).
    at(clock, -(60 + 3) * M)
    route(ingest(cart("erin")))
    at(clock, -2 * M)
    assert fire_due(100) == 1
    # Pending waits: due S-1h (late), due S-30s (due, not late yet), due S+30s (scheduled).
    at(clock, -2 * 60 * M)
    route(ingest(cart("bob", cart_url="https://shop.example/c/bob")))
    at(clock, -60 * M - 30 * SEC)
    route(ingest(cart("dave", cart_url="https://shop.example/c/dave")))
    at(clock, -60 * M + 30 * SEC)
    route(ingest(cart("carol", cart_url="https://shop.example/c/carol")))
    # Welcome SMS: ivy routed S-10m and sent S-9m, hank S-3m / S-2m, frank and gina at S-30s,
    # frank sent at S-20s, gina still pending.
    at(clock, -10 * M)
    route(ingest(track("ivy", "Newsletter Subscribed")))
    at(clock, -9 * M)
    service.deliver(opted_in(deliveries("sms")[0]))
    at(clock, -5 * M)
    ingest(track("kim", "Product Viewed"), track("lea", "Product Viewed"))  # never routed
    at(clock, -3 * M)
    route(ingest(track("hank", "Newsletter Subscribed")))
    at(clock, -2 * M)
    service.deliver(opted_in(deliveries("sms")[1]))
    at(clock, -1 * M)
    route(ingest(track("jack", "Instagram Post Liked")))
    at(clock, -30 * SEC)
    route(ingest(track("frank", "Newsletter Subscribed"), track("gina", "Newsletter Subscribed")))
    at(clock, -20 * SEC)
    frank = deliveries("sms")[2]
    service.deliver(opted_in(frank))
    # On the broker: one job waiting out a back-off on `email`, one `events` job fetched by a
    # worker and not yet acknowledged.
    send_job("email").send_with_options(args=(10_000,), delay=3_600_000)
    consumer = broker.consume("events", prefetch=1, timeout=5_000)
    fetched = next(consumer)
    assert fetched is not None
    enqueued_by = time.time()
    at(clock, timedelta(0))
    try:
        yield {"enqueued_by": enqueued_by}
    finally:
        consumer.ack(fetched)
        consumer.close()


def test_figures_match_the_known_load(admin: str, known_load: dict[str, Any]) -> None:
    with session_scope() as session:
        snapshot = queues.snapshot(session)
    rows = {row.name: row for row in snapshot.queues}
    assert list(rows) == ["events", "journeys", *registry.names(), "dead_letters"]

    events = rows["events"]
    # 9 store calls = 9 messages; the worker holds one.
    assert events.broker is not None
    assert (events.broker.ready, events.broker.in_flight, events.broker.delayed) == (8, 1, 0)
    age = events.broker.oldest_ready_age_seconds
    assert age is not None and 0 <= age <= time.time() - known_load["enqueued_by"] + 60
    assert events.backlog.waiting == 2  # kim's and lea's events, never routed
    assert events.backlog.oldest_age_seconds == 300
    # Routed in the last minute: jack (S-1m, the boundary counts), frank, gina; +hank; +ivy.
    assert events.processed == {"1m": 3, "5m": 4, "15m": 5}
    assert events.failed == {"1m": 0, "5m": 0, "15m": 0} and events.notes

    journeys = rows["journeys"]
    assert journeys.broker is None
    assert journeys.backlog.waiting == 2  # bob (due S-1h) and dave (due S-30s)
    assert journeys.backlog.late == 1  # bob only: due for longer than 60 s
    assert journeys.backlog.scheduled == 1  # carol, due S+30s
    assert journeys.backlog.oldest_age_seconds == 3600
    assert journeys.processed == {"1m": 0, "5m": 1, "15m": 1}  # erin's wait fired at S-2m
    assert journeys.failed == {"1m": 0, "5m": 0, "15m": 0}

    email = rows["email"]
    assert email.broker is not None
    assert (email.broker.ready, email.broker.delayed, email.broker.in_flight) == (0, 1, 0)
    assert email.broker.oldest_ready_age_seconds is None
    assert (email.backlog.waiting, email.backlog.in_flight) == (0, 0)
    assert email.processed == {"1m": 0, "5m": 0, "15m": 0}
    assert email.failed == {"1m": 0, "5m": 1, "15m": 1}  # erin's, unrenderable, at S-2m

    sms = rows["sms"]
    assert sms.broker is not None
    assert (sms.broker.ready, sms.broker.delayed, sms.broker.in_flight) == (4, 0, 0)
    assert (sms.backlog.waiting, sms.backlog.in_flight) == (1, 0)  # gina
    assert sms.backlog.oldest_age_seconds == 30
    assert sms.processed == {"1m": 1, "5m": 2, "15m": 3}  # frank S-20s, hank S-2m, ivy S-9m
    assert sms.failed == {"1m": 0, "5m": 0, "15m": 0}

    meta = rows["meta_audience"]
    assert meta.broker is not None and meta.broker.ready == 1
    assert (meta.backlog.waiting, meta.backlog.oldest_age_seconds) == (1, 60)  # jack
    assert meta.processed == {"1m": 0, "5m": 0, "15m": 0}

    dead = rows["dead_letters"]
    assert (dead.backlog.waiting, dead.backlog.oldest_age_seconds) == (1, 120)
    assert dead.failed == {"1m": 0, "5m": 1, "15m": 1}
    assert dead.processed is None

    assert snapshot.broker.reachable
    assert [(p.channel, p.mode, p.rate_limited) for p in snapshot.providers] == [
        (name, "dry_run", False) for name in registry.names()
    ]
    # Dry runs call nobody: no bucket to show (a limited live channel: tests/delivery).
    assert all(p.rate_limit is None for p in snapshot.providers)
    assert all("CARILLON_RATE_LIMITS" in p.rate_limit_note for p in snapshot.providers)


def _without_ages(data: Any) -> Any:
    """The figures minus what moves with the wall clock between two readings."""
    if isinstance(data, dict):
        return {
            k: _without_ages(v)
            for k, v in data.items()
            if k not in ("oldest_ready_age_seconds", "generated_at")
        }
    if isinstance(data, list):
        return [_without_ages(v) for v in data]
    return data


def test_api_and_cli_show_the_same_figures(
    admin: str, client: TestClient, known_load: dict[str, Any]
) -> None:
    with session_scope() as session:
        expected = _without_ages(queues.snapshot(session).as_dict())

    answer = client.get("/ops/queues", headers=bearer())
    assert answer.status_code == 200
    assert _without_ages(answer.json()) == expected

    result = CliRunner().invoke(cli, ["queues", "--json"])
    assert result.exit_code == 0, result.output
    assert _without_ages(json.loads(result.stdout)) == expected

    table = CliRunner().invoke(cli, ["queues"])
    assert table.exit_code == 0, table.output
    lines = {line.split()[0]: line.split() for line in table.stdout.splitlines() if line.strip()}
    assert lines["QUEUE"][:3] == ["QUEUE", "READY", "DELAYED"]
    # queue, ready, delayed, in flight, oldest, backlog, sending, late, oldest db, done, failed
    assert lines["events"][1:4] == ["8", "0", "1"]
    assert lines["events"][5:] == ["2", "-", "-", "5m", "3/4/5", "0/0/0", "0"]
    assert lines["journeys"][1:] == [
        "-",
        "1",
        "-",
        "-",
        "2",
        "-",
        "1",
        "60m",
        "0/1/1",
        "0/0/0",
        "-",
    ]
    assert lines["email"][1:4] == ["0", "1", "0"]
    assert lines["email"][9:11] == ["0/0/0", "0/1/1"]
    assert lines["sms"][1:4] == ["4", "0", "0"]
    assert lines["sms"][5:] == ["1", "0", "-", "30s", "1/2/3", "0/0/0", "0"]
    assert lines["dead_letters"][5] == "1"
    assert "provider Twilio (sms, dry_run): not limited" in table.stdout


def test_watch_refreshes_the_table(admin: str, manual_clock: ManualClock) -> None:
    result = CliRunner().invoke(cli, ["queues", "--watch", "--interval", "0.1", "--count", "3"])
    assert result.exit_code == 0, result.output
    assert result.stdout.count("QUEUE  ") == 3


@pytest.mark.parametrize(
    "args,complaint",
    [
        (["queues", "--interval", "0"], "--interval"),
        (["queues", "--watch", "--count", "0"], "--count"),
        (["queues", "--interval", "soon"], "--interval"),
    ],
)
def test_queues_rejects_bad_options(args: list[str], complaint: str) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert complaint in result.output


def test_queues_endpoint_needs_the_admin_token(client: TestClient, admin: str) -> None:
    assert client.get("/ops/queues").status_code == 401
    assert client.get("/ops/queues", headers=bearer("wrong")).status_code == 401


def test_unreachable_redis_is_reported_not_raised() -> None:
    from dramatiq.brokers.redis import RedisBroker

    from app.ops import broker_state

    dead = RedisBroker(url="redis://127.0.0.1:1/0", namespace="carillon-test")
    info = broker_state.inspect(dead, ["events"])
    assert not info.reachable
    assert info.error and "Connection" in info.error
    assert info.queues == {}
