"""Routing jobs: ids of stored events in, profiles and journeys updated."""

from __future__ import annotations

from app.events import routing
from app.events.jobs import PROCESS_EVENTS
from app.queue import actor


@actor(PROCESS_EVENTS)
def process(event_ids: list[int]) -> None:
    routing.process_many(event_ids)
