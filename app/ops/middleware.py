"""HTTP middleware: a request id on every request (and every log line written for it), and
ingest latency into the metrics."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from app.ops import instruments, logs

log = logging.getLogger("carillon.http")

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is kept only if it is short and plain: it is written into every log line.
_ACCEPTABLE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

Next = Callable[[Request], Awaitable[Response]]


async def request_context(request: Request, call_next: Next) -> Response:
    """Bind the request id (the caller's `X-Request-ID`, or a new one), echo it back, and log
    one line per request."""
    given = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = given if _ACCEPTABLE_ID.fullmatch(given) else uuid.uuid4().hex
    started = time.perf_counter()
    with logs.scope(request_id=request_id):
        status = 500
        try:
            response = await instruments.ingest_timer(request, call_next)
            status = response.status_code
        finally:
            log.info(
                "%s %s %s",
                request.method,
                request.url.path,
                status,
                extra={"duration_ms": round((time.perf_counter() - started) * 1000, 2)},
            )
    response.headers[REQUEST_ID_HEADER] = request_id
    return response
