"""Ingest: validate, deduplicate and persist events; hand their ids to routing after commit.

The 200 answer is given only once the events are committed, so an acknowledged event is never
lost; a resent `messageId` hits the unique key and is acknowledged without a second row.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from app import clock
from app.db import dialect_insert
from app.events.models import Event
from app.events.schemas import MAX_EVENT_BYTES, SegmentEvent
from app.events.tasks import process
from app.queue import enqueue


class InvalidEvent(ValueError):
    """A request Carillon refuses; the message names the offending field."""


def _where(prefix: str, loc: Sequence[int | str]) -> str:
    path = prefix
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


def parse_event(raw: Any, prefix: str = "") -> SegmentEvent:
    if not isinstance(raw, dict):
        raise InvalidEvent(f"{prefix or 'body'}: an event must be a JSON object")
    size = len(json.dumps(raw, separators=(",", ":")).encode())
    if size > MAX_EVENT_BYTES:
        raise InvalidEvent(
            f"{prefix or 'body'}: event is {size} bytes; the limit is {MAX_EVENT_BYTES} (32 KB)"
        )
    try:
        return SegmentEvent.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = _where(prefix, first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise InvalidEvent(f"{where}: {message}") from None


def _timestamp(event: SegmentEvent, received_at: datetime) -> datetime:
    return event.timestamp or event.original_timestamp or received_at


def _row(event: SegmentEvent, source: str, received_at: datetime) -> dict[str, Any]:
    payload = event.model_dump(mode="json", by_alias=True, exclude_none=True)
    payload.setdefault("messageId", event.message_id)
    timestamp = _timestamp(event, received_at)
    payload["timestamp"] = timestamp.isoformat()
    payload["receivedAt"] = received_at.isoformat()
    payload.pop("writeKey", None)
    return {
        "source": source,
        "message_id": payload["messageId"],
        "type": event.type,
        "name": event.event if event.type == "track" else event.name,
        "user_id": event.user_id,
        "anonymous_id": event.anonymous_id,
        "timestamp": timestamp,
        "received_at": received_at,
        "payload": payload,
        "enqueued_at": received_at,
    }


def store(session: Session, events: list[SegmentEvent], source: str) -> list[int]:
    """Insert the events a source sent, skipping messageIds already stored; return new ids."""
    received_at = clock.now()
    for event in events:
        if not event.message_id:  # Segment assigns one when the client did not
            event.message_id = f"carillon-{uuid.uuid4()}"
    rows = [_row(e, source, received_at) for e in events]
    # One cached statement with many parameter sets: SQLAlchemy batches it into multi-row
    # INSERTs ("insertmanyvalues") without compiling a new statement per batch size.
    stmt = (
        dialect_insert(session)(Event)
        .on_conflict_do_nothing(index_elements=[Event.source, Event.message_id])
        .returning(Event.id)
    )
    ids = list(session.connection().execute(stmt, rows).scalars())
    if ids:
        enqueue(session, process, ids)
    return ids
