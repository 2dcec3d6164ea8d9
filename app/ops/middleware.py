"""HTTP middleware: a request id on every request (and every log line written for it), and
ingest latency into the metrics.

A plain ASGI middleware, not Starlette's `BaseHTTPMiddleware`: that one runs the rest of the
app in a task group of its own and re-wraps the response stream, which cost about 1.5 ms of
CPU per request (measured on a 404, as much as the rest of the app), on every event posted."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.ops import instruments, logs

log = logging.getLogger("carillon.http")

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is kept only if it is short and plain: it is written into every log line.
_ACCEPTABLE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class RequestContext:
    """Bind the request id (the caller's `X-Request-ID`, or a new one), echo it back, log one
    line per request and time `/v1/*` requests into the ingest latency histogram."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get(REQUEST_ID_HEADER, "")
        request_id = given if _ACCEPTABLE_ID.fullmatch(given) else uuid.uuid4().hex
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        with logs.scope(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                elapsed = time.perf_counter() - started
                instruments.observe_request(scope, status, elapsed)
                log.info(
                    "%s %s %s",
                    scope["method"],
                    scope["path"],
                    status,
                    extra={"duration_ms": round(elapsed * 1000, 2)},
                )
