"""Latency under a steady load: event → provider call, with `carillon api`, `worker` and
`scheduler` on PostgreSQL + Redis and the Twilio stand-in answering after a set latency.

Every 1/(rate/2) s an asynchronous client posts a new person's `identify` (phone, SMS consent)
and `Newsletter Subscribed` together, as an SDK's flush (`/v1/batch`, routed in that order):
`rate` events/s, half of them starting the welcome SMS. Latency = the SMS's arrival at the
stand-in − the start of the post. The floor posts the same number of SMS straight to the
stand-in at the same pace (`bench/direct.py`): one HTTP hop, nothing in between.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import direct
from bench.common import fresh_services
from bench.end_to_end import person_events, warmed_up
from bench.figures import percentile, sustained_rate
from bench.standin import Accepted, StandIn, running_standin
from bench.table import Line
from tests.processes import WRITE_KEY, Carillon

CONNECTIONS = 32
# A kept-alive connection the server closes as a post goes out fails that post: SDKs send
# again, and the events' messageIds make the repeat harmless.
ATTEMPTS = 3


@dataclass(frozen=True)
class Posted:
    """When each journey event's post started, by the phone its SMS goes to; and the rate
    the client kept."""

    started: dict[str, float]
    events_per_second: float
    retried: int


async def _steady(base_url: str, rate: float, seconds: float) -> Posted:
    people = int(seconds * rate / 2)
    started: dict[str, float] = {}
    retried = 0
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    async with httpx.AsyncClient(
        base_url=base_url, auth=(WRITE_KEY, ""), limits=limits, timeout=120
    ) as client:

        async def post(index: int) -> None:
            nonlocal retried
            started[direct.phone(index)] = time.monotonic()
            body = {"batch": person_events(index)}
            for attempt in range(1, ATTEMPTS + 1):
                try:
                    (await client.post("/v1/batch", json=body)).raise_for_status()
                    return
                except httpx.TransportError:
                    if attempt == ATTEMPTS:
                        raise
                    retried += 1

        tasks = []
        first = time.monotonic()
        for index in range(people):
            await asyncio.sleep(max(0.0, first + index * 2 / rate - time.monotonic()))  # pacing
            tasks.append(asyncio.create_task(post(index)))
        elapsed = time.monotonic() - first
        await asyncio.gather(*tasks)
    return Posted(started, 2 * people / elapsed, retried)


def steady(carillon: Carillon, rate: float, seconds: float) -> Posted:
    return asyncio.run(_steady(carillon.base_url, rate, seconds))


def latencies(posted: Posted, accepted: list[Accepted]) -> list[float]:
    return [a.arrived_at - posted.started[a.to] for a in accepted if a.to in posted.started]


@dataclass(frozen=True)
class Percentiles:
    p50: float
    p99: float

    @classmethod
    def of(cls, seconds: list[float]) -> Percentiles:
        return cls(percentile(seconds, 50) * 1000, percentile(seconds, 99) * 1000)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("latency")
    group.add_argument("--rate", type=float, default=200, help="events posted per second")
    group.add_argument("--latency-seconds", type=float, default=30, help="length of the load")
    group.add_argument(
        "--latency-provider-ms", type=float, default=50, help="the stand-in's answer time"
    )


@contextmanager
def production(args: argparse.Namespace, workdir: Path) -> Iterator[tuple[StandIn, Carillon]]:
    """A fresh database, the stand-in, and the production roles pointed at both."""
    latency = args.latency_provider_ms
    log = f"standin-latency-{latency:g}.log"
    with warmed_up(workdir, fresh_services(args), latency, log, args.worker_processes) as both:
        yield both


def measure(args: argparse.Namespace, workdir: Path) -> list[Line]:
    with production(args, workdir) as (standin, carillon):
        posted = steady(carillon, args.rate, args.latency_seconds)
        accepted = standin.wait_for(len(posted.started))
    asked = len(posted.started)
    log = workdir / f"standin-floor-{args.latency_provider_ms:g}.log"
    with running_standin(args.latency_provider_ms, log) as standin:
        bound = Percentiles.of(direct.paced(standin, asked, args.rate / 2))
    measured = Percentiles.of(latencies(posted, accepted))
    how = (
        f"{args.latency_seconds:g} s at {posted.events_per_second:.0f} events/s posted, "
        f"{asked} SMS asked for ({args.rate / 2:g}/s), they left Carillon at "
        f"{sustained_rate([a.arrived_at for a in accepted]):.0f}/s; provider "
        f"{args.latency_provider_ms:g} ms"
    )
    if posted.retried:
        how += f"; {posted.retried} posts sent again after a dropped connection"
    if len(accepted) < asked:
        how += f"; {asked - len(accepted)} SMS MISSING"
    floor_is = "one post straight to the stand-in, same pace"
    return [
        Line(
            f"event -> SMS p50 at {args.rate:g} events/s (ms)",
            measured.p50,
            bound.p50,
            floor_is,
            how,
        ),
        Line(f"event -> SMS p99 at {args.rate:g} events/s (ms)", measured.p99, bound.p99, floor_is),
    ]
