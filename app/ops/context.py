"""Binding a job's ids into the log context at the queue job boundary, so the business code
only logs what happened and every line still says which delivery, trip, person and event."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from app.db import session_scope
from app.delivery.models import Delivery
from app.events.models import Event
from app.journeys.models import JourneyInstance
from app.ops import logs


def _delivery_ids(delivery_id: int) -> dict[str, Any]:
    return deliveries_ids([delivery_id]).get(delivery_id, {})


def deliveries_ids(delivery_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The log ids of each delivery (its trip, person and triggering event), in one query: a
    batch's calls are each logged under their own delivery."""
    try:
        with session_scope() as session:
            rows = session.execute(
                select(Delivery.id, Delivery.instance_id, Delivery.profile_id, Event.message_id)
                # Outer joins: a transactional send has no trip and no event.
                .outerjoin(JourneyInstance, JourneyInstance.id == Delivery.instance_id)
                .outerjoin(Event, Event.id == JourneyInstance.trigger_event_id)
                .where(Delivery.id.in_(delivery_ids))
            ).all()
    except SQLAlchemyError:  # the job itself will meet (and report) the same error
        return {}
    return {
        row[0]: {"instance_id": row[1], "profile_id": row[2], "message_id": row[3]} for row in rows
    }


@contextmanager
def delivery_scope(delivery_id: int) -> Iterator[None]:
    with logs.scope(delivery_id=delivery_id, **_delivery_ids(delivery_id)):
        yield


def delivery_log_ids(delivery_id: int, known: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The ids `logs.scope` binds for one delivery of a batch (None for those not known)."""
    ids = known.get(delivery_id, {})
    return {
        "delivery_id": delivery_id,
        "instance_id": ids.get("instance_id"),
        "profile_id": ids.get("profile_id"),
        "message_id": ids.get("message_id"),
    }
