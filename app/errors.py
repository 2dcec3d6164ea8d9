"""One error hierarchy for every refusal, mapped to HTTP in one handler (`answer`).

A route, a dependency or a service raises the error that says what went wrong (`NotFound`,
`Conflict`…); none of them builds an HTTP answer. It lives apart from every domain so that
settings, webhooks and ingest can all raise it without importing each other (an import from
`app.events.endpoints` once made enabling SendGrid's signature check a circular import at
start-up).

The body is Segment's, which its SDKs read: `{"success": false, "code": …, "message": …}`. The
ops API answers `{"detail": message}` instead, the shape FastAPI gives its own 422s there and
the one the dashboard's script reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from fastapi import Request
from fastapi.responses import JSONResponse

# Paths whose errors keep FastAPI's `{"detail": …}` body.
DETAIL_BODY_PATHS = ("/ops", "/metrics")


class CarillonError(Exception):
    """A request refused: `status` and `code` say how, `message` says why to a person.

    Each kind declares its answer once: `class NotFound(CarillonError, status=404, …)`."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "error"

    def __init_subclass__(cls, status: int = 0, code: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.status = status or cls.status
        cls.code = code or cls.code

    def __init__(self, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = dict(headers or {})


class BadInput(CarillonError, status=400, code="invalid_request"):
    """Malformed or invalid input; nothing was changed."""


class Unauthorized(CarillonError, status=401, code="unauthorized"):
    """Who is calling is unknown; `challenge` is the scheme to send (`WWW-Authenticate`)."""

    def __init__(self, message: str, challenge: str | None = None) -> None:
        super().__init__(message, {"WWW-Authenticate": challenge} if challenge else None)


class Forbidden(CarillonError, status=403, code="forbidden"):
    """The caller is known, or the request unsigned or forged, and may not do this."""


class NotFound(CarillonError, status=404, code="not_found"):
    """The thing the request names does not exist."""


class Gone(CarillonError, status=410, code="gone"):
    """The thing the request names existed and was removed for good (an erased person)."""


class Conflict(CarillonError, status=409, code="conflict"):
    """The request is valid but the thing it names is in a state that refuses it."""


class Unprocessable(CarillonError, status=422, code="unprocessable"):
    """Well formed, but naming what does not exist or cannot be done (an unknown message, an
    idempotency key reused with another request); nothing was changed."""


class TooLarge(CarillonError, status=413, code="payload_too_large"):
    """The body is over the limit for this call."""


class _RetryLater(CarillonError):
    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message, {"Retry-After": str(retry_after)} if retry_after else None)


class TooManyRequests(_RetryLater, status=429, code="too_many_requests"):
    """The caller is throttled; `Retry-After` says for how long."""


class Unavailable(_RetryLater, status=503, code="unavailable"):
    """Carillon cannot answer now (database down, ops not configured)."""


def answer(request: Request, exc: Exception) -> JSONResponse:
    """The one handler: a `CarillonError` as its HTTP answer."""
    if not isinstance(exc, CarillonError):  # registered for CarillonError only
        raise TypeError(f"not a CarillonError: {exc!r}")
    body: dict[str, Any]
    if request.url.path.startswith(DETAIL_BODY_PATHS):
        body = {"detail": exc.message}
    else:
        body = {"success": False, "code": exc.code, "message": exc.message}
    return JSONResponse(body, status_code=exc.status, headers=exc.headers or None)
