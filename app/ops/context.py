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
    try:
        with session_scope() as session:
            row = session.execute(
                select(Delivery.instance_id, Delivery.profile_id, Event.message_id)
                # Outer joins: a transactional send has no trip and no event.
                .outerjoin(JourneyInstance, JourneyInstance.id == Delivery.instance_id)
                .outerjoin(Event, Event.id == JourneyInstance.trigger_event_id)
                .where(Delivery.id == delivery_id)
            ).first()
    except SQLAlchemyError:  # the job itself will meet (and report) the same error
        return {}
    if row is None:
        return {}
    return {"instance_id": row[0], "profile_id": row[1], "message_id": row[2]}


@contextmanager
def delivery_scope(delivery_id: int) -> Iterator[None]:
    with logs.scope(delivery_id=delivery_id, **_delivery_ids(delivery_id)):
        yield
