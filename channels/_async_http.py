"""One `aiohttp` session per adapter for the workers' sending loop: the connections an
adapter keeps to its provider, as many as the channel's send concurrency, every request
bounded by the provider timeout and let go only when the rate limiter says so (the
departure gate, `channels.base.before_departure`).

aiohttp rather than httpx here: httpx's connection pool checks every pooled socket on each
request (httpcore's `_assign_requests_to_connections`), which took three quarters of the
sending loop's CPU at 50 connections; aiohttp is also what Twilio's own async client uses.
"""

from __future__ import annotations

import asyncio
import base64

import aiohttp

from channels.base import before_departure

# No answer in time, refused, reset, cut mid-answer: the provider may be back in a moment.
UNREACHABLE = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError)


def unreachable_reason(exc: BaseException) -> str:
    """What a transport failure was, in the words of the blocking clients' errors."""
    if isinstance(exc, asyncio.TimeoutError):
        return "ReadTimeout"
    return type(exc).__name__


def basic_auth(user: str, password: str) -> str:
    """An `Authorization` header's value (aiohttp deprecates its own `auth=` argument)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


async def _departing(*_: object) -> None:
    await before_departure()


def _departure_trace() -> aiohttp.TraceConfig:
    """The sending loop's last word before a request's bytes leave (`before_departure`): once
    the connection is in hand, new or reused, which is when aiohttp writes the request."""
    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(_departing)
    trace.on_connection_reuseconn.append(_departing)
    return trace


class Pool:
    def __init__(self, timeout: float, connections: int) -> None:
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        """Opened on first use, on the sending loop that then uses it."""
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._connections)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self.timeout, trace_configs=[_departure_trace()]
            )
        return self._session

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
