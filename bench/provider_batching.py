"""Provider batching: one send job of `--messages` deliveries (CARILLON_DELIVERY_BATCH_SIZE set
to that), against the SendGrid and Graph stand-ins answering after `--latency-ms`.

Three cases: the same e-mail to everyone (one mail/send, a personalization each, per 1,000),
an e-mail whose subject names each person (one request each, as before batching), and
everyone added to one Meta audience (one Graph call). Each is timed from the job's start to its
last answer written, beside its bound: the very requests Carillon made, replayed to the same
stand-in by an asynchronous client with as many in flight as Carillon may have
(CARILLON_SEND_CONCURRENCY), no Carillon in between. Requests counted at the stand-in do not
move with the machine's load; the times do, so read the ratios.

    .venv/bin/python -m bench.provider_batching [--messages 1000 --latency-ms 50]
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp

from app.db import session_scope
from app.delivery import outbox, service
from app.migrate import upgrade
from app.profiles.models import Profile, Trait
from app.settings import get_settings
from bench.common import arguments, load_average, machine, quiet_settings, scratch_database
from tests.providers.meta import TEST_AUDIENCE_ID, MetaGraphServer
from tests.providers.sendgrid import SendGridServer
from tests.providers.server import ProviderServer, RecordedRequest, Reply

CONTENT = {"subject": "Les soldes commencent", "html": "<p>-30 %</p>", "text": "-30 %"}


class Slow(ProviderServer):
    """A stand-in answering after `latency` seconds, as a distant provider does."""

    latency = 0.05

    def respond(self, request: RecordedRequest) -> Reply:
        self._stopping.wait(self.latency)
        return super().respond(request)


class SlowSendGrid(Slow, SendGridServer):
    pass


class SlowMeta(Slow, MetaGraphServer):
    pass


def people(count: int) -> list[str]:
    now = datetime.now(UTC)
    ids = [str(uuid.uuid4()) for _ in range(count)]
    with session_scope() as session:
        for i, profile_id in enumerate(ids):
            session.add(Profile(id=profile_id, created_at=now, updated_at=now))
            for name, value in (("email", f"p{i}@example.com"), ("phone", f"+336{i:08}")):
                trait = Trait(profile_id=profile_id, name=name, value=value, timestamp=now)
                trait.message_id = f"bench-{i}"
                session.add(trait)
    return ids


def plan(ids: list[str], channel: str, content: Callable[[int], dict[str, Any]]) -> int:
    """One delivery each, no trip (as a broadcast's); the first one's id."""
    with session_scope() as session:
        planned = [
            outbox.plan_without_trip(session, p, ("bench", "bench"), channel, content(i)).id
            for i, p in enumerate(ids)
        ]
    return planned[0]


async def _replay(requests: list[RecordedRequest], base_url: str, concurrency: int) -> None:
    """The requests again, as they were, over one aiohttp pool of `concurrency` connections
    (the client Carillon's e-mail adapter uses)."""
    lanes = iter(requests)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as client:

        async def lane() -> None:
            for request in lanes:
                headers = {k: v for k, v in request.headers.items() if k != "content-length"}
                url = f"{base_url}{request.path}"
                async with client.request(
                    request.method, url, data=request.raw_body, headers=headers
                ) as answer:
                    answer.raise_for_status()

        await asyncio.gather(*(lane() for _ in range(min(concurrency, len(requests)))))


def measure(name: str, server: ProviderServer, channel: str, first: int, concurrency: int) -> str:
    server.reset()
    started = time.perf_counter()
    service.deliver_batch(first, channel)
    carillon = time.perf_counter() - started
    made = server.requests
    server.reset()
    started = time.perf_counter()
    asyncio.run(_replay(made, server.base_url, concurrency))
    bound = time.perf_counter() - started
    return f"{name:<38} {len(made):>8} {carillon:>10.2f} s {bound:>8.2f} s {bound / carillon:>6.2f}"


def main() -> None:
    parser = arguments(__doc__ or "")
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()
    Slow.latency = args.latency_ms / 1000
    database_url = scratch_database(args)
    with SlowSendGrid() as sendgrid, SlowMeta() as meta:
        os.environ.update(
            {
                "CARILLON_DATABASE_URL": database_url,
                "CARILLON_SECRET_KEY": secrets.token_urlsafe(32),
                "CARILLON_DELIVERY_BATCH_SIZE": str(args.messages),
                "SENDGRID_API_KEY": sendgrid.api_key,
                "CARILLON_SENDGRID_BASE_URL": sendgrid.base_url,
                "META_ACCESS_TOKEN": meta.access_token,
                "CARILLON_META_GRAPH_URL": meta.base_url,
                "CARILLON_RATE_LIMITS": "",
                "CARILLON_PUBLIC_URL": "https://shop.example",
                **quiet_settings(),
            }
        )
        os.environ.pop("CARILLON_REDIS_URL", None)  # the in-process queue: nothing consumed
        get_settings.cache_clear()
        upgrade()
        concurrency = get_settings().send_concurrency
        print(f"machine: {machine()}; load average {load_average()} at the start")
        print(
            f"{args.messages} deliveries in one send job, provider latency {args.latency_ms:g} ms,"
            f" {concurrency} calls in flight at most"
        )
        print(f"{'case':<38} {'requests':>8} {'Carillon':>12} {'bound':>10} {'ratio':>6}")
        ids = people(args.messages)
        cases = [
            ("e-mail, the same to everyone", sendgrid, "email", lambda i: CONTENT),
            (
                "e-mail, a subject of each one's own",
                sendgrid,
                "email",
                lambda i: {**CONTENT, "subject": f"P{i}, les soldes commencent"},
            ),
            (
                "Meta audience, everyone added",
                meta,
                "meta_audience",
                lambda i: {"audience_id": TEST_AUDIENCE_ID},
            ),
        ]
        for name, server, channel, content in cases:
            first = plan(ids, channel, content)
            print(measure(name, server, channel, first, concurrency))
        service.close_channels()
        print(f"load average {load_average()} at the end")


if __name__ == "__main__":
    main()
