"""The broker, and the one way to enqueue: ids only, after commit.

Redis in production; without `CARILLON_REDIS_URL`, dramatiq's in-process broker serves the
embedded default. Either way the database holds the truth and the sweeper re-enqueues anything
a lost message left behind, so losing the in-process queue on restart loses no work.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)
from sqlalchemy.orm import Session

from app.db import after_commit, after_commit_together
from app.settings import get_settings

# A failed job (e.g. the database briefly down) is retried a few times; after that the row
# stays due in the database and the sweeper hands it over again.
MAX_RETRIES = 5


@lru_cache
def get_broker() -> dramatiq.Broker:
    middleware = [
        AgeLimit(),
        TimeLimit(time_limit=5 * 60 * 1000),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        Retries(max_retries=MAX_RETRIES, min_backoff=500, max_backoff=30_000),
    ]
    url = get_settings().redis_url
    broker: dramatiq.Broker
    if url:
        broker = RedisBroker(url=url, middleware=middleware, namespace="carillon")
    else:
        broker = StubBroker(middleware=middleware)
        broker.emit_after("process_boot")
    dramatiq.set_broker(broker)
    return broker


@dataclass(frozen=True)
class Job:
    """A job by name: every enqueue goes through one, so no module imports the module that
    runs a job (which would import the enqueuer back: the delivery service enqueues its own
    retries, routing enqueues sends). Only the task modules, loaded by the workers, turn a
    `Job` into an actor (`actor()`)."""

    actor_name: str
    queue_name: str


def actor(job: Job) -> Any:
    """Declare the function that runs `job` (named `domain.action`) on Carillon's broker."""

    def decorate(fn: Any) -> dramatiq.Actor[Any, Any]:
        return dramatiq.actor(
            actor_name=job.actor_name, queue_name=job.queue_name, broker=get_broker()
        )(fn)

    return decorate


def enqueue(session: Session, job: Job, *args: Any, delay_seconds: float = 0) -> None:
    """Send `job(*args)` once `session` commits; nothing is sent if it rolls back.

    With `delay_seconds` the broker holds the message that long (retries, deferrals); the row's
    own due time stays the truth, so an early or lost delayed message changes nothing."""
    after_commit(session, partial(_send, job, args, delay_seconds))


def enqueue_spread(session: Session, job: Job, arg: Any, every: int) -> None:
    """Send `job(arg)` once `session` commits for one in `every` of the args the transaction
    gave `job` this way (the first, then each `every`-th): for a job that takes up to `every`
    due rows besides its own, one message per batch wakes a worker, where one per row woke
    `every - 1` workers to find their row taken. A row whose message was not sent is taken by
    another row's job, or handed over again by the sweeper."""

    def send_every(args: list[Any]) -> None:
        for one in args[::every]:
            _send(job, (one,), 0)

    after_commit_together(session, job, arg, send_every)


def _send(job: Job, args: tuple[Any, ...], delay_seconds: float) -> None:
    broker = get_broker()
    broker.declare_queue(job.queue_name)  # idempotent; a process may enqueue a job by name
    message: dramatiq.Message[Any] = dramatiq.Message(  # before it declares the job
        queue_name=job.queue_name,
        actor_name=job.actor_name,
        args=args,
        kwargs={},
        options={},
    )
    broker.enqueue(message, delay=int(delay_seconds * 1000) + 1 if delay_seconds > 0 else None)
