"""The queue state ops look at: per queue, what the broker holds and what the database says
is still to do, and how much was done or failed in the last 1, 5 and 15 minutes.

Two views of "work waiting", on purpose. The broker's counts (ready, delayed, in flight) show
whether workers keep up, but they are lost when the broker restarts. The database backlog
(unprocessed events, pending and sending deliveries, due timers) is the truth the sweeper acts
on, and the same whichever broker runs. Throughput comes from row timestamps, not in-memory
counters, so every API replica reports the same figures and a restart resets nothing.

Rows: `events` (routing), `journeys` (timers: no broker queue, the scheduler polls the
database), one per channel (`email`, `sms`, `meta_audience`) and `dead_letters`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from app import clock
from app.delivery import models as delivery
from app.delivery.models import Delivery
from app.delivery.rate_limit import BucketState, limiter
from app.events.models import Event
from app.journeys.models import Timer
from app.ops import broker_state, dead_letters
from app.ops.broker_state import BrokerInfo
from app.queue import get_broker
from app.settings import get_settings
from channels import registry

WINDOWS = {"1m": timedelta(minutes=1), "5m": timedelta(minutes=5), "15m": timedelta(minutes=15)}
DONE = (delivery.SENT, delivery.DRY_RUN)


def queue_names() -> tuple[str, ...]:
    """The rows ops see: routing, timers, one per channel, dead letters."""
    return ("events", "journeys", *registry.names(), "dead_letters")


def broker_queues() -> list[str]:
    return ["events", *registry.names()]


RATE_LIMIT_NOTE = (
    "rate limits per provider account from CARILLON_RATE_LIMITS, shared by every worker "
    "(in Redis; in-process without it); tokens below zero are turns reserved by waiting "
    "workers; a 429 halves the rate for the provider's Retry-After, or 60 s"
)


@dataclass
class Backlog:
    """What the database says is still to do for this queue."""

    waiting: int
    in_flight: int | None = None  # deliveries claimed (`sending`), no answer recorded yet
    # deliveries: `unknown` (worker lost during the provider call), waiting for review;
    # events: routing failed for good (the reason is on the row: `routing_error`)
    needs_review: int | None = None
    oldest_age_seconds: float | None = None
    late: int | None = None  # journeys only: timers due for longer than the late threshold
    scheduled: int | None = None  # journeys only: timers due later


@dataclass
class QueueRow:
    name: str
    broker: broker_state.BrokerQueue | None
    backlog: Backlog
    processed: dict[str, int] | None
    failed: dict[str, int] | None
    notes: list[str] = field(default_factory=list)


@dataclass
class Provider:
    channel: str
    provider: str
    mode: str  # "live" | "dry_run"
    rate_limited: bool
    rate_limit_note: str
    rate_limit: BucketState | None = None  # the shared bucket as of now, when limited


@dataclass
class Snapshot:
    generated_at: datetime
    broker: BrokerInfo
    queues: list[QueueRow]
    providers: list[Provider]
    timer_late_seconds: float

    def as_dict(self) -> dict[str, Any]:
        broker = asdict(self.broker)
        broker.pop("queues")
        return {
            "generated_at": self.generated_at.isoformat(),
            "broker": broker,
            "timer_late_seconds": self.timer_late_seconds,
            "queues": [asdict(row) for row in self.queues],
            "providers": [asdict(p) for p in self.providers],
        }

    def row(self, name: str) -> QueueRow:
        return next(row for row in self.queues if row.name == name)


def _age(now: datetime, oldest: datetime | None) -> float | None:
    return None if oldest is None else max(0.0, (now - oldest).total_seconds())


def _windows(session: Session, column: Any, *where: Any, now: datetime) -> dict[str, int]:
    """Rows whose `column` falls in each window, in one query."""
    since = {name: now - span for name, span in WINDOWS.items()}
    longest = min(since.values())
    counts = [func.coalesce(func.sum(case((column >= s, 1), else_=0)), 0) for s in since.values()]
    row = session.execute(select(*counts).where(*where, column >= longest)).one()
    return {name: int(value) for name, value in zip(since, row, strict=True)}


def _count_when(condition: Any) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def backlogs(session: Session, now: datetime) -> dict[str, Backlog]:
    """What the database says is still to do, per queue row (cheap: partial indexes)."""
    late_after = timedelta(seconds=get_settings().timer_late_seconds)
    result: dict[str, Backlog] = {}
    waiting, failed, oldest = session.execute(
        select(
            _count_when(Event.failed_at.is_(None)),
            _count_when(Event.failed_at.is_not(None)),
            func.min(case((Event.failed_at.is_(None), Event.received_at))),
        ).where(Event.processed_at.is_(None))
    ).one()
    result["events"] = Backlog(
        waiting=int(waiting), needs_review=int(failed), oldest_age_seconds=_age(now, oldest)
    )

    due, late, scheduled, oldest_due = session.execute(
        select(
            _count_when(Timer.due_at <= now),
            _count_when(Timer.due_at <= now - late_after),
            _count_when(Timer.due_at > now),
            func.min(Timer.due_at),
        ).where(Timer.status == "pending")
    ).one()
    result["journeys"] = Backlog(
        waiting=int(due),
        oldest_age_seconds=_age(now, oldest_due) if oldest_due and oldest_due <= now else None,
        late=int(late),
        scheduled=int(scheduled),
    )

    rows = session.execute(
        select(
            Delivery.channel,
            _count_when(Delivery.status == delivery.PENDING),
            _count_when(Delivery.status == delivery.SENDING),
            _count_when(Delivery.status == delivery.UNKNOWN),
            func.min(case((Delivery.status == delivery.PENDING, Delivery.created_at))),
        )
        .where(Delivery.status.in_((delivery.PENDING, delivery.SENDING, delivery.UNKNOWN)))
        .group_by(Delivery.channel)
    ).all()
    found = {
        channel: Backlog(
            waiting=int(p),
            in_flight=int(s),
            needs_review=int(u),
            oldest_age_seconds=_age(now, oldest),
        )
        for channel, p, s, u, oldest in rows
    }
    for channel in registry.names():
        result[channel] = found.get(channel, Backlog(waiting=0, in_flight=0, needs_review=0))

    dead, oldest_dead = session.execute(
        select(func.count(), func.min(Delivery.updated_at)).where(dead_letters.is_dead_letter())
    ).one()
    result["dead_letters"] = Backlog(waiting=dead, oldest_age_seconds=_age(now, oldest_dead))
    return result


def throughput(
    session: Session, now: datetime
) -> dict[str, tuple[dict[str, int] | None, dict[str, int] | None]]:
    """(processed, failed) per window and queue row, from row timestamps; None = not recorded."""
    result: dict[str, tuple[dict[str, int] | None, dict[str, int] | None]] = {
        "events": (
            _windows(session, Event.processed_at, now=now),
            _windows(session, Event.failed_at, now=now),
        ),
        "journeys": (
            _windows(session, Timer.fired_at, Timer.status == "fired", now=now),
            # An erroring timer records no firing time; it failed on the tick after due_at.
            _windows(session, Timer.due_at, Timer.status == "error", now=now),
        ),
    }
    for channel in registry.names():
        mine = Delivery.channel == channel
        result[channel] = (
            _windows(session, Delivery.sent_at, mine, Delivery.status.in_(DONE), now=now),
            _windows(
                session, Delivery.updated_at, mine, Delivery.status == delivery.FAILED, now=now
            ),
        )
    result["dead_letters"] = (
        None,
        _windows(session, Delivery.updated_at, dead_letters.is_dead_letter(), now=now),
    )
    return result


NOTES = {
    "events": [
        "an event whose routing fails is retried; after 5 failed attempts it is failed for "
        "good: counted in failed and needs_review, its reason on the row (routing_error)"
    ],
    "journeys": [
        "no broker queue: timers live in the database and the scheduler fires them; "
        "scheduled = due later, waiting = due now, late = due for longer than "
        "CARILLON_TIMER_LATE_SECONDS"
    ],
    "dead_letters": [
        "waiting = failed, dead and unknown deliveries (replay them from the dashboard; an "
        "unknown one may have been sent: check with the provider first); jobs that ran out of "
        "broker retries are counted per queue as dead-lettered"
    ],
}


def providers() -> list[Provider]:
    """Per provider: live or dry run, and its rate-limit bucket (dry runs are never limited)."""
    settings, limits = get_settings(), limiter()
    found = []
    for channel in registry.names():
        bucket = limits.state(channel)
        found.append(
            Provider(
                channel=channel,
                provider=registry.spec(channel).provider,
                mode="live" if registry.has_credentials(channel, settings) else "dry_run",
                rate_limited=bucket is not None,
                rate_limit_note=RATE_LIMIT_NOTE,
                rate_limit=bucket,
            )
        )
    return found


def _last_failed_event(session: Session) -> str | None:
    """The newest event given up on and why, so ops need not open the database to start."""
    found = session.execute(
        select(Event.id, Event.routing_attempts, Event.routing_error)
        .where(Event.failed_at.is_not(None))
        .order_by(Event.failed_at.desc())
        .limit(1)
    ).first()
    if found is None:
        return None
    event_id, attempts, error = found
    return f"last failed: event {event_id} after {attempts} attempts: {error}"


def snapshot(session: Session) -> Snapshot:
    info = broker_state.inspect(get_broker(), broker_queues())
    now = clock.now()
    waiting = backlogs(session, now)
    done = throughput(session, now)
    last_failed = _last_failed_event(session) if waiting["events"].needs_review else None
    rows = [
        QueueRow(
            name,
            info.queues.get(name),
            waiting[name],
            done[name][0],
            done[name][1],
            list(NOTES.get(name, [])),
        )
        for name in queue_names()
    ]
    if last_failed:
        next(row for row in rows if row.name == "events").notes.append(last_failed)
    return Snapshot(now, info, rows, providers(), get_settings().timer_late_seconds)
