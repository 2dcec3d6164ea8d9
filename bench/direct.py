"""The bounds for sending: the stand-in driven directly by an asynchronous client, with no
Carillon in between. `flood` posts as many messages as Carillon sent with as many requests in
flight as Carillon had; `paced` posts at the pace of a latency run."""

from __future__ import annotations

import asyncio
import time

import httpx

from bench.standin import Accepted, StandIn
from tests.providers.twilio import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_FROM_NUMBER

BODY = "Bienvenue Léa ! -15 % sur votre première commande avec le code BIENVENUE15."


def phone(index: int) -> str:
    return f"+3361{index:07d}"


def _client(connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(auth=(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN), limits=limits, timeout=60)


async def _post(client: httpx.AsyncClient, url: str, index: int) -> None:
    form = {"To": phone(index), "From": TEST_FROM_NUMBER, "Body": BODY}
    (await client.post(url, data=form)).raise_for_status()


def _messages_url(standin: StandIn) -> str:
    return f"{standin.base_url}/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Messages.json"


async def _flood(url: str, messages: int, concurrency: int) -> None:
    indexes = iter(range(messages))  # shared by the lanes: each message is posted once
    async with _client(concurrency) as client:

        async def lane() -> None:
            for index in indexes:
                await _post(client, url, index)

        await asyncio.gather(*(lane() for _ in range(concurrency)))


def flood(standin: StandIn, messages: int, concurrency: int) -> list[Accepted]:
    standin.drain()
    asyncio.run(_flood(_messages_url(standin), messages, concurrency))
    return standin.wait_for(messages)


async def _paced(url: str, messages: int, rate: float) -> dict[str, float]:
    started: dict[str, float] = {}
    async with _client(256) as client:

        async def one(index: int) -> None:
            started[phone(index)] = time.monotonic()
            await _post(client, url, index)

        tasks = []
        first = time.monotonic()
        for index in range(messages):
            await asyncio.sleep(max(0.0, first + index / rate - time.monotonic()))  # pacing
            tasks.append(asyncio.create_task(one(index)))
        await asyncio.gather(*tasks)
    return started


def paced(standin: StandIn, messages: int, rate: float) -> list[float]:
    """Seconds from each post's start to its arrival at the stand-in."""
    standin.drain()
    started = asyncio.run(_paced(_messages_url(standin), messages, rate))
    return [m.arrived_at - started[m.to] for m in standin.wait_for(messages)]
