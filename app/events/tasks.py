"""Routing jobs: ids of stored events in, profiles and journeys updated."""

from __future__ import annotations

from app.events import routing
from app.queue import actor


@actor("events.process", queue="events")
def process(event_ids: list[int]) -> None:
    routing.process_many(event_ids)
