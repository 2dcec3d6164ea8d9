"""Ingest throughput: events/s accepted through `POST /v1/batch` by one `carillon api`
process on PostgreSQL (events stored, their ids queued on Redis; no worker running, so the
figure is the API's alone).

    .venv/bin/python -m bench.ingest [--runs 5] [--events 20000] [--batch 100] [--clients 4]
"""

from __future__ import annotations

import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.common import arguments, fresh_services, machine, median
from tests.processes import WRITE_KEY, running_carillon


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


def run_once(base_url: str, events: int, size: int, clients: int) -> float:
    bodies = [batch(size) for _ in range(events // size)]

    def post(body: dict[str, Any], client: httpx.Client) -> None:
        response = client.post(f"{base_url}/v1/batch", json=body)
        response.raise_for_status()

    with (
        ThreadPoolExecutor(clients) as pool,
        httpx.Client(auth=(WRITE_KEY, ""), timeout=60) as client,
    ):
        started = time.perf_counter()
        list(pool.map(lambda body: post(body, client), bodies))
        elapsed = time.perf_counter() - started
    return len(bodies) * size / elapsed


def main() -> None:
    parser = arguments(__doc__ or "")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    env = fresh_services(args)
    with (
        tempfile.TemporaryDirectory() as workdir,
        running_carillon(Path(workdir), env, ("api",)) as carillon,
    ):
        run_once(carillon.base_url, args.batch * 10, args.batch, args.clients)  # warm-up
        rates = [
            run_once(carillon.base_url, args.events, args.batch, args.clients)
            for _ in range(args.runs)
        ]
    print(f"machine: {machine()}")
    print(f"{args.events} events per run in batches of {args.batch}, {args.clients} clients")
    print("runs (events/s): " + ", ".join(f"{rate:,.0f}" for rate in rates))
    print(f"median: {median(rates):,.0f} events/s")


if __name__ == "__main__":
    main()
