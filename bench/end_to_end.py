"""Event to provider, end to end: each person's `identify` (phone, SMS consent) and
`Newsletter Subscribed` posted in batches, routed through the newsletter journey, the welcome
SMS received by the Twilio stand-in answering after a set latency. Messages/s sustained, on the
production roles (`api`, `worker`, `scheduler` on PostgreSQL + Redis) and on the embedded
default (`serve` on SQLite).

The bound drives the same stand-in with as many messages and as many requests in flight as
Carillon had at its peak (`bench/direct.py`), once Carillon has stopped.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import direct, memory
from bench.common import fresh_services, quiet_settings
from bench.figures import peak_in_flight, sustained_rate
from bench.ingest import post_all
from bench.standin import Accepted, StandIn, running_standin
from bench.table import Line
from tests.processes import PRODUCTION_ROLES, SERVE, Carillon, running_carillon

PEOPLE_PER_BATCH = 50  # an identify and a track each: batches of 100 events


def person_events(index: int) -> list[dict[str, Any]]:
    """An `identify` with what the SMS needs, then the event that starts the journey; in one
    batch they are routed in this order."""
    user, now = f"user-{index}", datetime.now(UTC).isoformat()
    traits = {"phone": direct.phone(index), "first_name": "Léa", "sms_opt_in": True}
    common = {"userId": user, "timestamp": now}
    return [
        {"type": "identify", "traits": traits, "messageId": f"{user}-identify", **common},
        {"type": "track", "event": "Newsletter Subscribed", "messageId": f"{user}-track", **common},
    ]


def bodies(people: range) -> list[dict[str, Any]]:
    return [
        {"batch": [e for i in people[start : start + PEOPLE_PER_BATCH] for e in person_events(i)]}
        for start in range(0, len(people), PEOPLE_PER_BATCH)
    ]


WARM_UP = 9_999_999  # a person apart from the measured ones


@contextmanager
def warmed_up(
    workdir: Path,
    env: dict[str, str],
    latency_ms: float,
    log: str,
    worker_processes: int,
    roles: tuple[str, ...] = PRODUCTION_ROLES,
) -> Iterator[tuple[StandIn, Carillon]]:
    """The stand-in answering after `latency_ms` (its log `log` in `workdir`), `roles` on
    `env` pointed at it, and one SMS through them all first."""
    with (
        running_standin(latency_ms, workdir / log) as standin,
        running_carillon(
            workdir, {**env, **standin.env()}, roles, worker_processes=worker_processes
        ) as carillon,
    ):
        warm_up(standin, carillon)
        yield standin, carillon


def warm_up(standin: StandIn, carillon: Carillon) -> None:
    """One SMS through every process first: a worker still importing when the load starts
    would count its start-up as latency."""
    carillon.post("/v1/batch", {"batch": person_events(WARM_UP)}).raise_for_status()
    if not standin.wait_for(1):
        raise RuntimeError("the warm-up SMS never arrived: see the processes' logs")
    standin.drain()


@dataclass(frozen=True)
class Sent:
    line: Line
    missing: int
    resident_mib: dict[str, float]


def _send(
    standin: StandIn,
    base_url: str,
    messages: int,
    processes: list[Any],
) -> tuple[list[Accepted], dict[str, float]]:
    post_all(base_url, bodies(range(messages)), clients=4)
    accepted = standin.wait_for(messages)
    return accepted, memory.resident(processes)


def run(
    name: str,
    args: argparse.Namespace,
    workdir: Path,
    latency_ms: float,
    env: dict[str, str],
    roles: tuple[str, ...],
) -> Sent:
    messages = args.messages if roles != SERVE else args.embedded_messages
    log = f"standin-{latency_ms:g}.log"
    with warmed_up(workdir, env, latency_ms, log, args.worker_processes, roles) as (
        standin,
        carillon,
    ):
        started = time.monotonic()
        accepted, resident = _send(standin, carillon.base_url, messages, carillon.processes)
        elapsed = time.monotonic() - started
        in_flight = peak_in_flight([(a.arrived_at, a.answered_at) for a in accepted])
        bound = direct.flood(standin, messages, in_flight)
    how = (
        f"{messages} people, {len(accepted)} SMS in {elapsed:.0f} s, at most {in_flight} "
        f"requests in flight; rate over the middle 80 % of arrivals"
    )
    missing = messages - len(accepted)
    if missing:
        how += f"; {missing} SMS MISSING"
    line = Line(
        name,
        sustained_rate([a.arrived_at for a in accepted]),
        sustained_rate([a.arrived_at for a in bound]),
        f"stand-in driven directly, {in_flight} in flight",
        how,
    )
    return Sent(line, missing, resident)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("end to end")
    group.add_argument(
        "--messages", type=int, default=2_000, help="people, so SMS, on PostgreSQL + Redis"
    )
    group.add_argument(
        "--embedded-messages", type=int, default=500, help="people, so SMS, on `serve`"
    )
    group.add_argument(
        "--provider-latency-ms",
        type=float,
        nargs="+",
        default=[50, 200],
        help="the stand-in's answer time, one run each",
    )


def production(args: argparse.Namespace, workdir: Path, latency_ms: float) -> Sent:
    return run(
        f"SMS end to end, provider {latency_ms:g} ms (msg/s)",
        args,
        workdir,
        latency_ms,
        fresh_services(args),
        PRODUCTION_ROLES,
    )


def embedded(args: argparse.Namespace, workdir: Path, latency_ms: float) -> Sent:
    database = workdir / "embedded.db"
    env = {"CARILLON_DATABASE_URL": f"sqlite:///{database}", **quiet_settings()}
    return run(
        f"SMS end to end, `serve` (SQLite), provider {latency_ms:g} ms (msg/s)",
        args,
        workdir,
        latency_ms,
        env,
        SERVE,
    )
