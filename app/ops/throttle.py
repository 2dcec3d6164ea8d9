"""Failed admin-token attempts, counted per client address, so the token cannot be guessed at
network speed (a wrong token once took 3 ms: 200 tries in 0.6 s).

Counted in the process's memory: each API replica keeps its own count, so N replicas allow N
times the rate, which is still hours per million guesses against a random token. The clock is
Carillon's one clock, so tests move time instead of sleeping.
"""

from __future__ import annotations

import threading
from collections import deque
from datetime import timedelta

from app import clock

MAX_FAILURES = 5
WINDOW = timedelta(minutes=1)
# Past this many distinct addresses the oldest are forgotten: a spoofed-address flood cannot
# grow the table without bound.
MAX_CLIENTS = 10_000

_lock = threading.Lock()
_failures: dict[str, deque] = {}


def retry_after(client: str) -> int | None:
    """Seconds until `client` may try again, or None if it may try now."""
    now = clock.now()
    with _lock:
        recent = _failures.get(client)
        while recent and now - recent[0] >= WINDOW:
            recent.popleft()
        if not recent or len(recent) < MAX_FAILURES:
            return None
        return max(1, int((recent[0] + WINDOW - now).total_seconds() + 0.999))


def failed(client: str) -> None:
    with _lock:
        if client not in _failures and len(_failures) >= MAX_CLIENTS:
            _failures.pop(next(iter(_failures)))
        _failures.setdefault(client, deque(maxlen=MAX_FAILURES)).append(clock.now())


def forget() -> None:
    """Start over (tests, and a process that changed its admin token)."""
    with _lock:
        _failures.clear()
