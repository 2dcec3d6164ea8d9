"""Event → provider-call latency for the newsletter scenario: `Newsletter Subscribed` posted to
`carillon api`, routed by `carillon worker`, the welcome SMS received by a local Twilio server.
PostgreSQL + Redis, the three production processes.

    .venv/bin/python -m bench.latency [--runs 3] [--messages 200] [--rate 20]
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from bench.common import arguments, fresh_services, machine, median, percentile
from tests.processes import PRODUCTION_ROLES, Carillon, provider_servers, running_carillon


def unprocessed(database_url: str) -> int:
    url = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM events WHERE processed_at IS NULL").fetchone()
        return int(row[0]) if row else 0


def run_once(
    carillon: Carillon, database_url: str, run: int, messages: int, rate: float
) -> list[float]:
    phones = {f"run{run}-user{i}": f"+336{run:02d}{i:06d}" for i in range(messages)}
    now = datetime.now(UTC).isoformat()
    for user, phone in phones.items():  # profiles first: the SMS needs the phone number
        body = {
            "userId": user,
            "traits": {"phone": phone, "first_name": "Léa", "sms_opt_in": True},
            "timestamp": now,
        }
        carillon.post("/v1/identify", body).raise_for_status()
    carillon.wait_until("profiles stored", lambda: unprocessed(database_url) == 0)

    posted: dict[str, float] = {}
    first = time.monotonic()
    for i, (user, phone) in enumerate(phones.items()):
        time.sleep(max(0.0, first + i / rate - time.monotonic()))  # pacing the load
        posted[phone] = time.monotonic()
        event = {
            "userId": user,
            "event": "Newsletter Subscribed",
            "timestamp": datetime.now(UTC).isoformat(),
        }
        carillon.post("/v1/track", event).raise_for_status()
    return [posted[phone] for phone in phones.values()]


def main() -> None:
    parser = arguments(__doc__ or "")
    parser.set_defaults(runs=3)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="events posted per second")
    args = parser.parse_args()
    env = fresh_services(args)
    latencies: list[float] = []
    medians: list[float] = []
    with provider_servers() as providers, tempfile.TemporaryDirectory() as workdir:
        env = {**env, **providers.env()}
        with running_carillon(Path(workdir), env, PRODUCTION_ROLES) as carillon:
            for run in range(args.runs):
                providers.twilio.reset()
                posted_at = run_once(
                    carillon, env["CARILLON_DATABASE_URL"], run, args.messages, args.rate
                )
                received = providers.twilio.wait_for_requests(args.messages, timeout=120)
                arrivals = {request.body["To"]: request.arrived_at for request in received}
                phones = [f"+336{run:02d}{i:06d}" for i in range(args.messages)]
                run_latencies = [
                    arrivals[phone] - sent for phone, sent in zip(phones, posted_at, strict=True)
                ]
                medians.append(median(run_latencies))
                latencies += run_latencies
    ms = 1000
    print(f"machine: {machine()}")
    print(f"{args.runs} runs x {args.messages} events at {args.rate:g}/s")
    print("run medians (ms): " + ", ".join(f"{m * ms:.1f}" for m in medians))
    print(
        f"all events: median {median(latencies) * ms:.1f} ms, "
        f"p99 {percentile(latencies, 99) * ms:.1f} ms"
    )


if __name__ == "__main__":
    main()
