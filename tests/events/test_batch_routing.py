"""Routing a job's events a batch to a transaction: each person's events in order, and a poison
event failing alone while the rest of its batch is routed."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from app.db import session_scope
from app.delivery.models import Delivery
from app.events import routing
from app.events.models import Event
from app.journeys import catalog
from tests.helpers import SHIPPED, T0, ingest

SUBSCRIBED = {"type": "track", "event": "Newsletter Subscribed"}


def stored(*raw: dict[str, Any]) -> list[int]:
    """Stored in one call, as one `/v1/batch` request: ids in batch order."""
    return ingest(*[{"timestamp": T0.isoformat(), **r} for r in raw])


def viewers(count: int) -> list[dict[str, Any]]:
    return [{"type": "track", "userId": f"v{n}", "event": "Product Viewed"} for n in range(count)]


def processed() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).where(Event.processed_at.is_not(None))) or 0


def test_a_person_s_identify_is_applied_before_the_track_that_follows_it() -> None:
    catalog.sync_directory(SHIPPED)
    traits = {"first_name": "Alice", "phone": "+33612345678", "sms_opt_in": True}
    # The welcome SMS is rendered while the track is routed, so its text shows whether the
    # identify before it was applied first; the other people's events fill more than a batch.
    ids = stored(
        *viewers(routing.BATCH_SIZE // 2),
        {"type": "identify", "userId": "alice", "traits": traits},
        *viewers(routing.BATCH_SIZE),
        {**SUBSCRIBED, "userId": "alice"},
    )
    routing.process_many(ids)
    assert processed() == len(ids)
    with session_scope() as session:
        [text] = session.scalars(select(Delivery.content["text"].as_string()))
    assert text.startswith("Bienvenue Alice !")


def test_a_poison_event_fails_alone_and_the_rest_of_its_batch_is_routed() -> None:
    ids = stored(
        *[{"type": "identify", "userId": f"p{n}", "traits": {"plan": "pro"}} for n in range(150)]
    )
    bad = ids[120]
    with session_scope() as session:  # traits that are not an object: routing raises on it
        event = session.get_one(Event, bad)
        event.payload = {**event.payload, "traits": ["not", "an", "object"]}
    with pytest.raises(RuntimeError, match=rf"events not processed: \[{bad}\]$"):
        routing.process_many(ids)
    assert processed() == len(ids) - 1
    with session_scope() as session:
        poison = session.get_one(Event, bad)
        assert (poison.routing_attempts, poison.processed_at) == (1, None)
