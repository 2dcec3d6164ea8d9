"""Small helpers shared by the tests."""

from __future__ import annotations

import base64
import gzip
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from sqlalchemy import func, select

from app.db import session_scope
from app.events.models import Event

WRITE_KEY = "test-key"


def basic(key: str = WRITE_KEY) -> dict[str, str]:
    token = base64.b64encode(f"{key}:".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def gzipped(body: dict[str, Any]) -> bytes:
    return gzip.compress(json.dumps(body).encode())


def event_count() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(Event)) or 0


def track(
    user: str,
    name: str,
    properties: dict[str, Any] | None = None,
    timestamp: str = "2026-11-02T09:00:00Z",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": user,
        "event": name,
        "properties": properties or {},
        "timestamp": timestamp,
        **extra,
    }


def identify(
    user: str, traits: dict[str, Any], timestamp: str = "2026-11-02T08:00:00Z", **extra: Any
) -> dict[str, Any]:
    return {"type": "identify", "userId": user, "traits": traits, "timestamp": timestamp, **extra}


class _Server(uvicorn.Server):
    """uvicorn with an event set once it listens (or once it gave up trying)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[Any] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve `app` with uvicorn in a thread on a free port; yields its base URL."""
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None))

    def run() -> None:
        try:
            server.run()
        finally:  # a failed start must not leave the caller waiting
            server.ready.set()

    thread = threading.Thread(target=run, name="carillon-api", daemon=True)
    thread.start()
    assert server.ready.wait(timeout=30), "uvicorn did not start within 30 s"
    assert server.started, "uvicorn failed to start (see the log above)"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        assert not thread.is_alive(), "uvicorn did not shut down within 30 s"
