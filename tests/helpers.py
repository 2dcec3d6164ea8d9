"""Small helpers shared by the tests."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

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
