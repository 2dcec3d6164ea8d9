"""Transactional sends under a steady load: `POST /v1/messages` at a set rate, with
`carillon api`, `worker` and `scheduler` on PostgreSQL + Redis and the Twilio stand-in
answering after a set latency.

The people are identified first (phone, SMS opt-in) and routed; then an asynchronous client
posts one inline SMS per person every 1/rate s. Two figures, the issue's targets beside them:
the answer's time (post start → 202; target p95 ≤ 50 ms) and the provider's (post start →
the SMS at the stand-in; target p99 ≤ 300 ms), at 100 requests/s by default. The bound, in
the same run after Carillon's load: the same requests at the same rate to a bare FastAPI
handler that validates the body and INSERTs one row (`bench/bare_send.py`), so a figure taken
on a loaded machine is read against what that machine could answer at all.

    .venv/bin/python -m bench.transactional --database carillon_bench_tx --redis-url redis://127.0.0.1:6379/9
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench import direct
from bench.common import arguments, fresh_services, load_average, plain_url, running_python
from bench.end_to_end import warmed_up
from bench.figures import percentile
from bench.ingest import post_all
from tests.providers.server import unused_port

SEND_KEY = "bench-send-key-0123456789abcdef"
CONNECTIONS = 32
PER_BATCH = 100
TARGET_ANSWER_P95_MS = 50.0
TARGET_PROVIDER_P99_MS = 300.0


@dataclass(frozen=True)
class Posted:
    """Per phone: when its post started and when its answer came."""

    started: dict[str, float]
    answered: dict[str, float]
    requests_per_second: float
    refused: int


def _identify(index: int) -> dict[str, Any]:
    traits = {"phone": direct.phone(index), "sms_opt_in": True}
    return {"type": "identify", "userId": f"tx-{index}", "traits": traits}


def _identified(database_url: str) -> int:
    with psycopg.connect(plain_url(database_url)) as conn:
        query = "SELECT count(*) FROM profile_identities WHERE kind = 'phone'"
        row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


async def _steady(base_url: str, rate: float, people: int) -> Posted:
    started: dict[str, float] = {}
    answered: dict[str, float] = {}
    refused = 0
    # Idle connections are let go before uvicorn's 5 s keep-alive closes them: a request sent
    # on one the server is closing fails with a ReadError.
    limits = httpx.Limits(
        max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS, keepalive_expiry=2
    )
    headers = {"Authorization": f"Bearer {SEND_KEY}"}
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, limits=limits, timeout=120
    ) as client:

        async def post(index: int) -> None:
            nonlocal refused
            phone = direct.phone(index)
            body = {"phone": phone, "channel": "sms", "content": {"text": f"Code {index:06d}"}}
            started[phone] = time.monotonic()
            answer = await client.post(
                "/v1/messages", json=body, headers={"Idempotency-Key": f"bench-{index}"}
            )
            answered[phone] = time.monotonic()
            if answer.status_code != 202:
                refused += 1

        tasks = []
        first = time.monotonic()
        for index in range(people):
            await asyncio.sleep(max(0.0, first + index / rate - time.monotonic()))  # pacing
            tasks.append(asyncio.create_task(post(index)))
        elapsed = time.monotonic() - first
        await asyncio.gather(*tasks)
    return Posted(started, answered, people / elapsed, refused)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", type=float, default=100, help="requests per second")
    parser.add_argument("--seconds", type=float, default=30, help="length of the load")
    parser.add_argument("--provider-ms", type=float, default=50, help="the stand-in's latency")


def _spread(name: str, seconds: list[float]) -> str:
    p50, p95, p99 = (percentile(seconds, pct) * 1000 for pct in (50, 95, 99))
    return f"{name:<26} p50 {p50:7.1f}  p95 {p95:7.1f}  p99 {p99:7.1f} ms"


def _bound(args: argparse.Namespace, env: dict[str, str], workdir: Path) -> Posted:
    """The same load on the bare handler, against the same PostgreSQL."""
    port = unused_port()
    uvicorn = ["-m", "uvicorn", "bench.bare_send:app", "--host", "127.0.0.1"]
    uvicorn += ["--port", str(port), "--log-level", "warning"]
    bare_env = {"BENCH_DATABASE_URL": plain_url(env["CARILLON_DATABASE_URL"])}
    url = f"http://127.0.0.1:{port}"
    with running_python(uvicorn, bare_env, workdir / "bare-send.log", f"{url}/healthz"):
        return asyncio.run(_steady(url, args.rate, int(args.rate * args.seconds)))


def measure(args: argparse.Namespace, workdir: Path) -> list[str]:
    people = int(args.rate * args.seconds)
    env = {**fresh_services(args), "CARILLON_SEND_KEYS": f"bench={SEND_KEY}"}
    log = "standin-transactional.log"
    start_load = load_average()
    with warmed_up(workdir, env, args.provider_ms, log, args.worker_processes) as (
        standin,
        carillon,
    ):
        bodies = [
            {"batch": [_identify(i) for i in range(start, min(start + PER_BATCH, people))]}
            for start in range(0, people, PER_BATCH)
        ]
        post_all(carillon.base_url, bodies, clients=4)
        url = env["CARILLON_DATABASE_URL"]
        carillon.wait_until("people identified", lambda: _identified(url) > people, 300)
        posted = asyncio.run(_steady(carillon.base_url, args.rate, people))
        accepted = standin.wait_for(people - posted.refused)
    bound = _bound(args, env, workdir)
    answers = [posted.answered[p] - posted.started[p] for p in posted.started]
    arrivals = [a.arrived_at - posted.started[a.to] for a in accepted if a.to in posted.started]
    bare = [bound.answered[p] - bound.started[p] for p in bound.started]
    answer_p95 = percentile(answers, 95) * 1000
    provider_p99 = percentile(arrivals, 99) * 1000 if arrivals else float("nan")
    ratio = percentile(bare, 95) / percentile(answers, 95)
    return [
        f"load average {start_load} at the start, {load_average()} at the end",
        f"{people} requests at {posted.requests_per_second:.0f}/s "
        f"(asked {args.rate:g}/s), provider {args.provider_ms:g} ms; "
        f"{posted.refused} refused, {people - posted.refused - len(arrivals)} SMS missing",
        f"answered (202)      p95 {answer_p95:7.1f} ms   target <= {TARGET_ANSWER_P95_MS:g} ms",
        f"at the provider     p99 {provider_p99:7.1f} ms   target <= {TARGET_PROVIDER_P99_MS:g} ms",
        _spread("answered (202)", answers),
        _spread("at the provider", arrivals) if arrivals else "at the provider: none",
        f"bound: bare FastAPI + one INSERT, {people} requests at "
        f"{bound.requests_per_second:.0f}/s, {bound.refused} refused",
        _spread("bound answered", bare),
        f"answered p95, bound / Carillon: {ratio:.2f}",
    ]


def main() -> None:
    parser = arguments(__doc__ or "")
    add_arguments(parser)
    parser.add_argument("--logs", type=Path, default=Path("/tmp"), help="the processes' logs")
    args = parser.parse_args()
    args.logs.mkdir(parents=True, exist_ok=True)
    for line in measure(args, args.logs):
        print(line)


if __name__ == "__main__":
    main()
