"""The routing job by name: ingest and the sweeper enqueue it without importing the workers'
side (`app.events.tasks`), which pulls in routing, journeys and delivery."""

from __future__ import annotations

from app.queue import Job

PROCESS_EVENTS = Job(actor_name="events.process", queue_name="events")
