"""The embedded default: queue workers and the scheduler as threads of the API process."""

from __future__ import annotations

import logging
from datetime import timedelta

import dramatiq

from app import scheduler
from app.settings import get_settings
from app.tasks import broker

log = logging.getLogger(__name__)


class Embedded:
    def __init__(self) -> None:
        self.worker = dramatiq.Worker(broker, worker_threads=get_settings().worker_threads)
        self.scheduler = scheduler.build(blocking=False)

    def start(self) -> None:
        self.worker.start()
        # The in-process queue starts empty: hand over whatever a previous run left due.
        scheduler.sweep(older_than=timedelta(0))
        self.scheduler.start()
        log.info("embedded worker and scheduler started")

    def stop(self) -> None:
        self.scheduler.shutdown(wait=True)
        self.worker.stop()
