"""Reading a provider's "come back later" hint, shared by the adapters.

Providers say how long to wait in different ways (`Retry-After` as seconds or as an HTTP date,
SendGrid's `X-RateLimit-Reset` epoch); the delivery layer only wants a number of seconds.
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime

TRANSIENT_HTTP_STATUSES = frozenset({408, 425, 429})


def is_transient_status(status: int | None) -> bool:
    """Timeouts, throttling and server errors pass; every other 4xx is the request's fault."""
    if status is None:
        return False
    return status in TRANSIENT_HTTP_STATUSES or 500 <= status <= 599


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a `Retry-After` value (RFC 9110: delay-seconds or an HTTP-date)."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if moment is None:  # pragma: no cover - older Pythons returned None
            return None
        seconds = moment.timestamp() - (time.time() if now is None else now)
    return max(seconds, 0.0)


def seconds_until_epoch(value: str | None, now: float | None = None) -> float | None:
    """Seconds until a Unix timestamp such as SendGrid's `X-RateLimit-Reset`."""
    if value is None:
        return None
    try:
        reset = float(value.strip())
    except ValueError:
        return None
    return max(reset - (time.time() if now is None else now), 0.0)
