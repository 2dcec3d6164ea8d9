"""One error an endpoint raises to refuse a request, mapped to HTTP in one handler.

It lives apart from every domain so that settings, webhooks and ingest can all raise it without
importing each other (an import from `app.events.endpoints` once made enabling SendGrid's
signature check a circular import at start-up).
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse


class Rejected(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    410: "gone",
    413: "payload_too_large",
    429: "too_many_requests",
    503: "unavailable",
}


def rejected_response(_request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, Rejected):  # registered for Rejected only
        raise TypeError(f"not a Rejected error: {exc!r}")
    # Segment SDKs read `code` and `message` from an error body.
    code = _CODES.get(exc.status, "error")
    return JSONResponse(
        {"success": False, "code": code, "message": exc.message},
        status_code=exc.status,
        headers=exc.headers,
    )
