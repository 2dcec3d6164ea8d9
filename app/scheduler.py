"""Periodic jobs: fire due journey timers, sweep lost queue messages.

Safe to run in several processes at once: each job claims rows with SKIP LOCKED.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from app import sweeper
from app.journeys import timers
from app.settings import get_settings

log = logging.getLogger(__name__)

SWEEP_INTERVAL_SECONDS = 10


def fire_timers() -> None:
    fired = timers.fire_due(get_settings().timer_batch_size)
    if fired:
        log.info("fired %d journey timers", fired)


def sweep(older_than: timedelta | None = None) -> None:
    age = (
        older_than
        if older_than is not None
        else timedelta(seconds=get_settings().sweep_after_seconds)
    )
    sweeper.sweep_events(age)
    sweeper.sweep_deliveries(age)


def build(*, blocking: bool) -> BaseScheduler:
    settings = get_settings()
    scheduler: BaseScheduler = BlockingScheduler() if blocking else BackgroundScheduler()
    common = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
    scheduler.add_job(
        fire_timers,
        "interval",
        seconds=settings.scheduler_interval_seconds,
        id="journeys.fire_timers",
        **common,
    )
    scheduler.add_job(
        sweep, "interval", seconds=SWEEP_INTERVAL_SECONDS, id="outbox.sweep", **common
    )
    return scheduler
