"""The production topology under faults: `carillon api`, `carillon worker` and `carillon
scheduler` as real processes on a private PostgreSQL and Redis, a Twilio stand-in that can be
slow or fail, and an ingest client that retries like the Segment SDKs. Counting is done where
it matters: at the provider (requests and accepted messages per recipient) and in the database.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.orm import Session

from app.delivery import models
from app.delivery.models import Delivery
from app.events.models import Event
from app.profiles.models import USER_ID, Identity
from tests.faults.services import PrivatePostgres, PrivateRedis
from tests.processes import (
    PRODUCTION_ROLES,
    WRITE_KEY,
    Carillon,
    Process,
    Providers,
    running_carillon,
)
from tests.providers.meta import MetaGraphServer
from tests.providers.sendgrid import SendGridServer
from tests.providers.server import RecordedRequest, Reply
from tests.providers.twilio import TwilioServer, error_reply

# Short enough for a test, each still longer than the step before it can legitimately take.
ENV = {
    "CARILLON_SWEEP_AFTER_SECONDS": "3",
    "CARILLON_PROVIDER_TIMEOUT_SECONDS": "5",
    "CARILLON_SENDING_TIMEOUT_SECONDS": "30",
    "CARILLON_RATE_LIMITS": "",
    "CARILLON_RETRY_BASE_SECONDS": "0.2",
    "CARILLON_RETRY_MAX_SECONDS": "2",
    "CARILLON_DELIVERY_MAX_ATTEMPTS": "15",
    "CARILLON_SCHEDULER_INTERVAL_SECONDS": "0.2",
}
_databases = itertools.count(1)


class FaultyTwilio(TwilioServer):
    """Twilio's Messages API, holding each answer `delay_seconds` (so calls are in flight when
    a worker is killed) and answering Twilio's 500 to a seeded `failure_rate` of calls."""

    def __init__(self, delay_seconds: float = 0.0, failure_rate: float = 0.0) -> None:
        super().__init__()
        self.delay_seconds = delay_seconds
        self.failure_rate = failure_rate
        self._random = random.Random(5)
        self._lock = threading.Lock()
        self.in_flight = 0
        self.failures = 0

    def respond(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.in_flight += 1
            fail = self._random.random() < self.failure_rate
            self.failures += fail
        try:
            if self.delay_seconds:
                self._stopping.wait(self.delay_seconds)
            if fail:
                return error_reply(500, 20500, "Internal Server Error")
            return super().respond(request)
        finally:
            with self._lock:
                self.in_flight -= 1

    def requests_per_recipient(self) -> Counter[str]:
        return Counter(r.body["To"] for r in self.requests if isinstance(r.body, dict))

    def sent_per_recipient(self) -> Counter[str]:
        return Counter(message["to"] for message in self.messages)


def phone(index: int) -> str:
    return f"+336{index:08d}"


def people_identify(indexes: range) -> list[dict[str, Any]]:
    return [
        {
            "type": "identify",
            "messageId": f"identify-{i}",
            "userId": f"user-{i}",
            "traits": {"first_name": f"P{i}", "phone": phone(i), "sms_opt_in": True},
        }
        for i in indexes
    ]


def subscriptions(indexes: range) -> list[dict[str, Any]]:
    return [
        {
            "type": "track",
            "messageId": f"subscribe-{i}",
            "userId": f"user-{i}",
            "event": "Newsletter Subscribed",
        }
        for i in indexes
    ]


def post_until_accepted(base_url: str, events: list[dict[str, Any]], give_up: float = 90) -> int:
    """POST a batch until it is answered 200, resending the same messageIds after a 5xx or a
    connection error (waiting as `Retry-After` says, else backing off), as Segment SDKs do.
    Returns how many attempts it took."""
    deadline = time.monotonic() + give_up
    backoff = 0.2
    for attempt in itertools.count(1):
        wait = backoff
        try:
            response = httpx.post(
                f"{base_url}/v1/batch", json={"batch": events}, auth=(WRITE_KEY, ""), timeout=10
            )
            if response.status_code == 200:
                return attempt
            if response.status_code < 500:
                raise AssertionError(f"batch refused: {response.status_code} {response.text}")
            wait = float(response.headers.get("retry-after", backoff))
        except httpx.TransportError:
            pass
        if time.monotonic() + wait > deadline:
            raise AssertionError(f"batch not accepted within {give_up}s")
        time.sleep(wait)  # the client's back-off, not a stand-in for synchronisation
        backoff = min(backoff * 2, 2.0)
    raise AssertionError("unreachable")


def ingest(base_url: str, events: list[dict[str, Any]], size: int = 100) -> int:
    """Send `events` in batches; return the number of batches that needed a retry."""
    retried = 0
    for start in range(0, len(events), size):
        retried += post_until_accepted(base_url, events[start : start + size]) > 1
    return retried


@dataclass
class Rig:
    postgres: PrivatePostgres
    redis: PrivateRedis
    database_url: str
    engine: Engine
    twilio: FaultyTwilio
    carillon: Carillon
    env: dict[str, str]
    workdir: Path
    stack: ExitStack

    def scalar(self, stmt: Any) -> Any:
        with Session(self.engine) as session:
            return session.scalar(stmt)

    def statuses(self) -> Counter[str]:
        with Session(self.engine) as session:
            rows = session.execute(select(Delivery.status, func.count()).group_by(Delivery.status))
            return Counter({status: int(n) for status, n in rows})

    def ids_with_status(self, status: str) -> set[int]:
        with Session(self.engine) as session:
            return set(session.scalars(select(Delivery.id).where(Delivery.status == status)))

    def phones_with_status(self, status: str) -> set[str]:
        """Recipients of the deliveries in `status`, from their profiles' user ids."""
        with Session(self.engine) as session:
            rows = session.scalars(
                select(Identity.value)
                .join(Delivery, Delivery.profile_id == Identity.profile_id)
                .where(Delivery.status == status, Identity.kind == USER_ID)
            )
            return {phone(int(user.removeprefix("user-"))) for user in rows}

    def unprocessed_events(self) -> int:
        return int(self.scalar(select(func.count()).where(Event.processed_at.is_(None))))

    def events(self) -> int:
        return int(self.scalar(select(func.count()).select_from(Event)))

    def wait_until(self, what: str, check: Any, timeout: float = 90) -> None:
        self.carillon.wait_until(what, check, timeout)

    def settle(self, deliveries: int, timeout: float = 90) -> None:
        """Every event routed, `deliveries` rows planned and none left pending or sending."""

        def done() -> bool:
            open_rows = self.statuses()
            return (
                self.unprocessed_events() == 0
                and sum(open_rows.values()) == deliveries
                and open_rows[models.PENDING] == 0
                and open_rows[models.SENDING] == 0
            )

        self.wait_until(f"{deliveries} deliveries settled", done, timeout)

    def identify(self, count: int) -> None:
        ingest(self.carillon.base_url, people_identify(range(count)), size=250)
        self.wait_until("profiles identified", lambda: self.unprocessed_events() == 0)

    def kill(self, role: str) -> None:
        """kill -9 the role's process and every process it forked, as the OOM killer would."""
        [killed] = [p for p in self.carillon.processes if p.command.startswith(f"carillon {role}")]
        os.killpg(killed.popen.pid, signal.SIGKILL)
        killed.popen.wait()
        self.carillon.processes.remove(killed)
        killed.stop()

    def start(self, role: str, name: str, queues: Sequence[str] = ()) -> None:
        """A new process of the role, as a supervisor restarts one (a worker of every queue,
        or only of `queues`); its log is `name`.log."""
        only = [option for queue in queues for option in ("--queue", queue)]
        process = self.run([*RESTART_ARGS[role], *only], name)
        self.stack.callback(process.stop)
        self.carillon.processes.append(process)

    def run(self, args: list[str], name: str) -> Process:
        """`carillon ARGS` on this rig's database, broker and providers."""
        full_env = {**os.environ, "CARILLON_WRITE_KEYS": WRITE_KEY, **self.env}
        return Process(args, full_env, self.workdir / f"{name}.log")


RESTART_ARGS = {
    "worker": ["worker", "--processes", "2", "--threads", "4"],
    "scheduler": ["scheduler"],
}


@contextmanager
def rig(
    postgres: PrivatePostgres,
    redis: PrivateRedis,
    workdir: Path,
    twilio: FaultyTwilio,
    settings: Mapping[str, str] | None = None,
) -> Iterator[Rig]:
    """`settings`: more of Carillon's variables for every process (a broadcasts directory)."""
    database_url = postgres.create_database(f"faults_{os.getpid()}_{next(_databases)}")
    redis.flush()
    providers = Providers(SendGridServer(), twilio, MetaGraphServer())
    env = {
        **ENV,
        **(settings or {}),
        "CARILLON_DATABASE_URL": database_url,
        "CARILLON_REDIS_URL": redis.url,
    }
    with ExitStack() as stack:
        for server in (providers.sendgrid, providers.twilio, providers.meta):
            stack.enter_context(server)
        env.update(providers.env())
        upgrade = Process(["db", "upgrade"], {**os.environ, **env}, workdir / "upgrade.log")
        if upgrade.popen.wait(120) != 0:
            raise AssertionError(f"carillon db upgrade failed:\n{upgrade.tail()}")
        upgrade.stop()
        engine = create_engine(database_url, pool_pre_ping=True)
        stack.callback(engine.dispose)
        carillon = stack.enter_context(
            running_carillon(workdir, env, PRODUCTION_ROLES, worker_processes=2)
        )
        yield Rig(postgres, redis, database_url, engine, twilio, carillon, env, workdir, stack)
