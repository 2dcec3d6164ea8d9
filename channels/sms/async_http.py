"""Twilio's own library over an aiohttp session (`channels._async_http.Pool`), for the
workers' sending loop.

The library builds the request (URL, form fields, auth) and reads the answer (its
`TwilioRestException` with Twilio's error code), as the blocking client does; only the
transport is asynchronous.
"""

from __future__ import annotations

import logging

import aiohttp
from twilio.http import AsyncHttpClient
from twilio.http.response import Response

from channels._async_http import Pool, basic_auth

log = logging.getLogger(__name__)


class AiohttpTwilioClient(AsyncHttpClient):
    def __init__(self, timeout: float, connections: int) -> None:
        super().__init__(log, True, timeout)
        self._pool = Pool(timeout, connections)

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
            headers = {**(headers or {}), "Authorization": basic_auth(*auth)}
        async with self._pool.session().request(
            method.upper(),
            uri,
            params=params,  # type: ignore[arg-type]
            data=data,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout) if timeout else self._pool.timeout,
            allow_redirects=allow_redirects,
        ) as answer:
            return Response(answer.status, await answer.text(), answer.headers)

    async def close(self) -> None:
        await self._pool.close()
