"""Twilio's own library over an `aiohttp` session, for the workers' sending loop.

The library builds the request (URL, form fields, auth) and reads the answer (its
`TwilioRestException` with Twilio's error code), as the blocking client does; only the
transport is asynchronous. aiohttp, as the library's own async client uses, but with one
connector whose size is the channel's send concurrency and the same timeout as every other
provider call. Not httpx: its connection pool checks every pooled socket on each request
(httpcore's `_assign_requests_to_connections`), which took three quarters of the sending
loop's CPU at 50 connections.
"""

from __future__ import annotations

import asyncio
import base64
import logging

import aiohttp
from twilio.http import AsyncHttpClient
from twilio.http.response import Response

log = logging.getLogger(__name__)

# No answer in time, refused, reset, cut mid-answer: Twilio may be back in a moment.
UNREACHABLE = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError)


def unreachable_reason(exc: BaseException) -> str:
    """What a transport failure was, in a word ops recognise from the blocking client."""
    if isinstance(exc, asyncio.TimeoutError):
        return "ReadTimeout"
    return type(exc).__name__


class AiohttpTwilioClient(AsyncHttpClient):
    def __init__(self, timeout: float, connections: int) -> None:
        super().__init__(log, True, timeout)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    def _opened(self) -> aiohttp.ClientSession:
        """Opened on first use, on the sending loop that then uses it."""
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._connections)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    async def request(  # type: ignore[override]
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        if auth:
            token = base64.b64encode(":".join(auth).encode()).decode("ascii")
            headers = {**(headers or {}), "Authorization": f"Basic {token}"}
        async with self._opened().request(
            method.upper(),
            uri,
            params=params,  # type: ignore[arg-type]
            data=data,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout) if timeout else self._timeout,
            allow_redirects=allow_redirects,
        ) as answer:
            return Response(answer.status, await answer.text(), answer.headers)

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
