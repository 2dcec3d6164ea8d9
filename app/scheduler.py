"""Periodic jobs: fire due journey timers, recompute computed traits whose window moved,
backfill existing profiles into new or edited segment files, plan the broadcasts' messages
whose turn came, decide A/B splits whose `winner:` rule is met, read the ad spend of the
configured ad sets, sweep lost queue messages, finish erasures whose audience removals are
settled.

Safe to run in several processes at once: each job claims rows with SKIP LOCKED.
"""

from __future__ import annotations

import logging
import signal
from datetime import timedelta
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from app import clock, sweeper
from app.analytics import spend, winners
from app.broadcasts import sending
from app.db import session_scope
from app.journeys import timers
from app.profiles import erasure
from app.segments import backfill, expiry
from app.settings import get_settings

log = logging.getLogger(__name__)

SWEEP_INTERVAL_SECONDS = 10
# A test is decided on hundreds of people: a minute's delay changes nothing, and each run
# counts the arms of every undecided split.
WINNER_INTERVAL_SECONDS = 60
# Each ad set is read once an hour (or later, backing off); this only looks whose turn came.
SPEND_INTERVAL_SECONDS = 60


def fire_timers() -> None:
    fired = timers.fire_due(get_settings().timer_batch_size)
    if fired:
        log.info("fired %d journey timers", fired)


def expire_windows() -> None:
    """Computed traits whose window moved: recomputed, memberships and journeys follow."""
    done = expiry.expire_due(get_settings().timer_batch_size)
    if done:
        log.info("recomputed the expired trait windows of %d people", done)


def backfill_segments() -> None:
    """New or edited segment files: existing people brought up to date, a batch at a time."""
    done = backfill.backfill_pending()
    if done:
        log.info("backfilled %d people into new or edited segment files", done)


def send_broadcasts() -> None:
    """Running broadcasts: the recipients whose turn came, within each broadcast's rate."""
    done = sending.send_due()
    if done:
        log.info("broadcasts: %d recipients settled", done)


def decide_winners() -> None:
    """Splits whose `winner:` rule is met: the winner recorded, new entrants sent down it."""
    with session_scope() as session:
        decided = winners.decide_pending(session)
    for winner in decided:
        log.info(
            "split %s of journey version %d: arm %s won on %s (p = %.3g)",
            winner.split_path,
            winner.journey_version_id,
            winner.arm,
            winner.metric,
            winner.p_value,
        )


def read_spend() -> None:
    """Ad sets whose spend is due to be read (again): the days read replace the stored ones."""
    done = spend.read_due()
    if done:
        log.info("ad spend: %d ad sets read", done)


def sweep(older_than: timedelta | None = None) -> None:
    age = (
        older_than
        if older_than is not None
        else timedelta(seconds=get_settings().sweep_after_seconds)
    )
    sweeper.sweep_events(age)
    sweeper.sweep_deliveries(age)
    with session_scope() as session:
        finished = erasure.finish_pending(session)
    if finished:
        log.info("finished %d erasures (audience removals settled)", finished)


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
        expire_windows,
        "interval",
        seconds=settings.scheduler_interval_seconds,
        id="segments.expire_windows",
        **common,
    )
    scheduler.add_job(
        backfill_segments,
        "interval",
        seconds=settings.scheduler_interval_seconds,
        id="segments.backfill",
        **common,
    )
    scheduler.add_job(
        send_broadcasts,
        "interval",
        seconds=settings.scheduler_interval_seconds,
        id="broadcasts.send",
        **common,
    )
    scheduler.add_job(
        decide_winners,
        "interval",
        seconds=WINNER_INTERVAL_SECONDS,
        id="experiments.decide_winners",
        **common,
    )
    scheduler.add_job(
        read_spend,
        "interval",
        seconds=SPEND_INTERVAL_SECONDS,
        id="analytics.read_spend",
        next_run_time=clock.now(),  # at start, not a minute later
        **common,
    )
    scheduler.add_job(
        sweep, "interval", seconds=SWEEP_INTERVAL_SECONDS, id="outbox.sweep", **common
    )
    return scheduler


def run() -> None:
    """`carillon scheduler`: fire timers and sweep until SIGTERM or SIGINT, then let a batch
    being fired or swept finish and return, so a supervisor's stop ends promptly in exit
    code 0 (without a handler a container's PID 1 ignores SIGTERM and is killed)."""
    scheduler = build(blocking=True)

    def stop(signum: int, _frame: FrameType | None) -> None:
        if scheduler.running:  # not a second signal while the first one drains
            log.info("%s: stopping once the running jobs end", signal.Signals(signum).name)
            scheduler.shutdown(wait=True)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    log.info(
        "scheduler running: due journey waits every %gs, sweep every %ds",
        get_settings().scheduler_interval_seconds,
        SWEEP_INTERVAL_SECONDS,
    )
    scheduler.start()
