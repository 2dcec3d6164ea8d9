"""Export: `GET /v1/profiles/{id}/export` of one person with 10,000 events (issue target:
≤ 1 s), through `carillon api` on PostgreSQL.

The person is made for real through `carillon api` and `carillon worker` (an identify with
an e-mail address and a phone, one `Product Viewed`); the routed event is then copied in bulk
(one `INSERT … SELECT` over `generate_series`) until the person has `--events` events. The
export is fetched `--runs` times with the admin token: median wall time and size.

    .venv/bin/python -m bench.profile_export [--events 10000 --runs 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

from bench.common import arguments, fresh_services, load_average, machine, plain_url
from bench.figures import median
from tests.processes import running_carillon

PERSON = "bench-person"
TOKEN = "bench-admin-token-0123456789"


def _person_routed(base_url: str) -> bool:
    answer = httpx.get(
        f"{base_url}/v1/profiles/{PERSON}", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    return answer.status_code == 200 and len(answer.json()["events"]) == 2


def _copy_event(database_url: str, copies: int) -> None:
    columns = (
        "source, type, name, user_id, anonymous_id, timestamp, received_at, payload, "
        "profile_id, enqueued_at, processed_at, routing_attempts"
    )
    with psycopg.connect(plain_url(database_url), autocommit=True) as conn:
        conn.execute(
            f"INSERT INTO events (message_id, {columns}) "
            f"SELECT e.message_id || ':' || g, {columns.replace(', ', ', e.')} "
            "FROM events e, generate_series(1, %(copies)s) g WHERE e.type = 'track'",
            {"copies": copies},
        )


def measure(args: argparse.Namespace, workdir: Path) -> tuple[list[float], int]:
    env = {**fresh_services(args), "CARILLON_ADMIN_TOKEN": TOKEN}
    with running_carillon(workdir, env, ("api", "worker")) as carillon:
        traits = {"email": "bench@example.org", "phone": "+33600000000"}
        carillon.post("/v1/identify", {"userId": PERSON, "traits": traits})
        carillon.post("/v1/track", {"userId": PERSON, "event": "Product Viewed"})
        carillon.wait_until("the person is routed", lambda: _person_routed(carillon.base_url))
        _copy_event(env["CARILLON_DATABASE_URL"], args.events - 2)
        url = f"{carillon.base_url}/v1/profiles/{PERSON}/export"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        httpx.get(url, headers=headers, timeout=60)  # warm-up
        seconds, size = [], 0
        for _ in range(args.runs):
            started = time.perf_counter()
            answer = httpx.get(url, headers=headers, timeout=60)
            seconds.append(time.perf_counter() - started)
            answer.raise_for_status()
            size = len(answer.content)
            if len(answer.json()["tables"]["events"]) != args.events:
                raise RuntimeError("the export does not hold every event")
    return seconds, size


def main() -> None:
    parser = arguments(__doc__ or "")
    parser.add_argument("--events", type=int, default=10_000, help="the person's events")
    parser.add_argument("--runs", type=int, default=5, help="exports timed")
    args = parser.parse_args()
    print(f"machine: {machine()}; load average {load_average()} at the start")
    with tempfile.TemporaryDirectory() as scratch:
        seconds, size = measure(args, Path(scratch))
    print(f"{args.events} events; export of {size / 1e6:.1f} MB")
    print("runs (s): " + ", ".join(f"{s:.3f}" for s in seconds))
    print(f"median: {median(seconds):.3f} s")


if __name__ == "__main__":
    main()
