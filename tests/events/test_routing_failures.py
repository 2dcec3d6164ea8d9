"""A poison event: routing that raises every time is retried a bounded number of times, ends
failed with its reason where ops look, and never holds up the events around it."""

from __future__ import annotations

import contextlib

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from app.cli import app as cli
from app.db import session_scope
from app.events import routing
from app.events.models import Event
from app.ops import queues
from app.sweeper import sweep_events
from tests.helpers import ingest, profile_of


def poison() -> int:
    """An event routing cannot apply: stored traits that are not an object (a row written by
    hand or by an older version; ingest refuses such a body)."""
    [event_id] = ingest({"type": "identify", "userId": "bad", "traits": {"plan": "x"}})
    with session_scope() as session:
        event = session.get(Event, event_id)
        assert event is not None
        event.payload = {**event.payload, "traits": ["not", "an", "object"]}
    return event_id


def row(event_id: int) -> Event:
    with session_scope() as session:
        event = session.get(Event, event_id)
        assert event is not None
        session.expunge(event)
        return event


def test_a_poison_event_fails_for_good_after_bounded_attempts() -> None:
    bad = poison()
    [good] = ingest({"type": "identify", "userId": "ok", "traits": {"plan": "pro"}})

    for attempt in range(1, routing.MAX_ATTEMPTS):
        with pytest.raises(RuntimeError, match=f"events not processed: \\[{bad}\\]"):
            routing.process_many([bad, good])  # the broker retries the job: it raised
        assert row(bad).routing_attempts == attempt
        assert row(bad).failed_at is None
    # The good event of the same batch was routed on the first try.
    assert profile_of("user_id", "ok")["traits"]["plan"] == "pro"
    assert row(good).processed_at is not None

    routing.process_many([bad, good])  # the last attempt: given up, so no retry is asked for
    failed = row(bad)
    assert failed.failed_at is not None and failed.processed_at is None
    assert failed.routing_attempts == routing.MAX_ATTEMPTS
    assert failed.routing_error is not None
    assert failed.routing_error.startswith("AttributeError:")

    # Nothing picks it up again: neither a redelivered job nor the sweeper.
    routing.process_many([bad])
    assert row(bad).routing_attempts == routing.MAX_ATTEMPTS
    with session_scope() as session:  # make it look long forgotten by the broker
        session.execute(update(Event).values(enqueued_at=failed.received_at.replace(year=2000)))
    assert sweep_events(older_than=queues.WINDOWS["1m"]) == 0


def test_ops_see_the_failed_event_and_its_reason() -> None:
    bad = poison()
    for _ in range(routing.MAX_ATTEMPTS):
        with contextlib.suppress(RuntimeError):  # raised while it may still be retried
            routing.process_many([bad])
    with session_scope() as session:
        snapshot = queues.snapshot(session)
    events = snapshot.row("events")
    assert events.backlog.needs_review == 1
    assert events.backlog.waiting == 0  # not counted as work still to do
    assert events.failed == {"1m": 1, "5m": 1, "15m": 1}
    assert any(
        note.startswith(f"last failed: event {bad} after 5 attempts: AttributeError")
        for note in events.notes
    )
    table = CliRunner().invoke(cli, ["queues"])
    assert table.exit_code == 0, table.output
    assert "events: 1 TO REVIEW" in table.output
    with session_scope() as session:
        assert session.scalar(select(Event.failed_at).where(Event.id == bad)) is not None
