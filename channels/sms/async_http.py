"""Twilio's own library over `httpx.AsyncClient`, for the workers' sending loop.

The library builds the request (URL, form fields, auth) and reads the answer (its
`TwilioRestException` with Twilio's error code), as the blocking client does; only the
transport is asynchronous. httpx rather than the library's aiohttp client: one pool whose size
is the channel's send concurrency, and the same timeouts as every other provider call.
"""

from __future__ import annotations

import logging

import httpx
from twilio.http import AsyncHttpClient
from twilio.http.response import Response

from channels.base import httpx_departure_trace

log = logging.getLogger(__name__)


class HttpxTwilioClient(AsyncHttpClient):
    def __init__(self, timeout: float, connections: int) -> None:
        super().__init__(log, True, timeout)
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self._client = httpx.AsyncClient(timeout=timeout, limits=limits)

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
        answer = await self._client.request(
            method.upper(),
            uri,
            params=params,  # type: ignore[arg-type]
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout or self.timeout,
            follow_redirects=allow_redirects,
            extensions={"trace": httpx_departure_trace},  # the rate-limit turn, held to the last
        )
        return Response(answer.status_code, answer.text, answer.headers)

    async def close(self) -> None:
        await self._client.aclose()
