"""Ingest: events/s accepted through `POST /v1/batch` by one `carillon api` process on
PostgreSQL (events stored, their ids queued on Redis; no worker running, so the figure is the
API's alone), against a bare FastAPI handler that only parses the batch with pydantic and
`COPY`s it into the same database (`bench/bare_ingest.py`, its own uvicorn process). The same
client for both: threads posting batches of `track` events, runs alternated, medians.
"""

from __future__ import annotations

import argparse
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.common import fresh_services, plain_url, running_python
from bench.figures import median
from bench.table import Line
from tests.processes import WRITE_KEY, running_carillon
from tests.providers.server import unused_port


def batch(size: int) -> dict[str, Any]:
    stamp = datetime.now(UTC).isoformat()
    return {
        "batch": [
            {
                "type": "track",
                "event": "Product Viewed",
                "userId": f"user-{uuid.uuid4().hex[:8]}",
                "messageId": str(uuid.uuid4()),
                "timestamp": stamp,
                "properties": {"sku": "SKU-123", "price": 19.9, "currency": "EUR"},
                "context": {"library": {"name": "bench", "version": "1"}},
            }
            for _ in range(size)
        ]
    }


def post_all(base_url: str, bodies: list[dict[str, Any]], clients: int) -> float:
    """Post every body to `/v1/batch` from `clients` threads; returns the seconds it took."""

    def post(body: dict[str, Any]) -> None:
        client.post(f"{base_url}/v1/batch", json=body).raise_for_status()

    with (
        ThreadPoolExecutor(clients) as pool,
        httpx.Client(
            auth=(WRITE_KEY, ""),
            timeout=120,
            limits=httpx.Limits(max_connections=clients, max_keepalive_connections=clients),
        ) as client,
    ):
        started = time.perf_counter()
        list(pool.map(post, bodies))
        return time.perf_counter() - started


def rate(base_url: str, events: int, size: int, clients: int) -> float:
    bodies = [batch(size) for _ in range(events // size)]
    return len(bodies) * size / post_all(base_url, bodies, clients)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("ingest")
    group.add_argument("--ingest-events", type=int, default=20_000, help="events per run")
    group.add_argument("--ingest-batch", type=int, default=100, help="events per batch")
    group.add_argument("--ingest-clients", type=int, default=4, help="client threads")
    group.add_argument("--ingest-runs", type=int, default=3, help="runs of each, alternated")


def measure(args: argparse.Namespace, workdir: Path) -> Line:
    env = fresh_services(args)
    size, clients = args.ingest_batch, args.ingest_clients
    bare_port = unused_port()
    bare_env = {"BENCH_DATABASE_URL": plain_url(env["CARILLON_DATABASE_URL"])}
    uvicorn = ["-m", "uvicorn", "bench.bare_ingest:app", "--host", "127.0.0.1"]
    uvicorn += ["--port", str(bare_port), "--log-level", "warning"]
    bare_url = f"http://127.0.0.1:{bare_port}"
    with (
        running_carillon(workdir, env, ("api",)) as carillon,
        running_python(uvicorn, bare_env, workdir / "bare.log", f"{bare_url}/healthz"),
    ):
        for url in (carillon.base_url, bare_url):  # warm-up
            rate(url, size * 10, size, clients)
        carillon_rates, bare_rates = [], []
        for _ in range(args.ingest_runs):
            carillon_rates.append(rate(carillon.base_url, args.ingest_events, size, clients))
            bare_rates.append(rate(bare_url, args.ingest_events, size, clients))
    return Line(
        "ingest POST /v1/batch (events/s)",
        median(carillon_rates),
        median(bare_rates),
        "bare FastAPI + pydantic + COPY",
        f"{args.ingest_runs} runs x {args.ingest_events} events, batches of {size}, "
        f"{clients} client threads; medians",
    )
