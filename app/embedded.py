"""The embedded default: queue workers and the scheduler as threads of the API process."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import dramatiq

from app import scheduler
from app.journeys import catalog
from app.settings import get_settings
from app.tasks import broker

log = logging.getLogger(__name__)

WATCH_INTERVAL_SECONDS = 2


class JourneyFiles:
    """Reloads the journeys directory when a file in it changes: edit, save, and `serve` runs
    the new version. (Production reloads on deploy with `carillon journeys reload`.)"""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen = self._fingerprint()

    def _fingerprint(self) -> tuple[tuple[str, int, int], ...]:
        if not self.path.is_dir():
            return ()
        files = [p for p in self.path.iterdir() if p.suffix in (".yaml", ".yml")]
        return tuple(sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in files))

    def check(self) -> None:
        current = self._fingerprint()
        if current != self.seen:
            self.seen = current
            log.info("journeys directory changed: reloading")
            catalog.sync_directory(self.path)


class Embedded:
    def __init__(self) -> None:
        self.worker = dramatiq.Worker(broker, worker_threads=get_settings().worker_threads)
        self.scheduler = scheduler.build(blocking=False)
        files = JourneyFiles(get_settings().journeys_dir)
        self.scheduler.add_job(
            files.check,
            "interval",
            seconds=WATCH_INTERVAL_SECONDS,
            id="journeys.watch",
            max_instances=1,
            coalesce=True,
        )

    def start(self) -> None:
        self.worker.start()
        # The in-process queue starts empty: hand over whatever a previous run left due.
        scheduler.sweep(older_than=timedelta(0))
        self.scheduler.start()
        log.info("embedded worker and scheduler started")

    def stop(self) -> None:
        self.scheduler.shutdown(wait=True)
        self.worker.stop()
