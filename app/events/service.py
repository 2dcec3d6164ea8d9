"""Ingest: validate, deduplicate and persist events; hand their ids to routing after commit.

The 200 answer is given only once the events are committed, so an acknowledged event is never
lost; a resent `messageId` hits the unique key and is acknowledged without a second row.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.orm import Session

from app import clock
from app.db import dialect_insert, is_postgres
from app.events import json_values
from app.events.event_time import TooEarly, event_time
from app.events.jobs import PROCESS_EVENTS
from app.events.json_values import InvalidEvent
from app.events.models import Event
from app.events.schemas import MAX_EVENT_BYTES, SegmentEvent, stored_string_problem
from app.ops import instruments
from app.profiles import erased
from app.queue import enqueue


def parse_event(
    raw: Any, received_at: datetime, prefix: str = "", kind: str | None = None
) -> SegmentEvent:
    """One event of a request, or InvalidEvent naming the field. `kind` is the call type the
    endpoint implies (`/v1/track`); a batch's events say theirs."""
    if not isinstance(raw, dict):
        raise InvalidEvent(f"{prefix or 'body'}: an event must be a JSON object")
    if kind is not None:
        given = raw.setdefault("type", kind)
        if given != kind:
            where = json_values.path(prefix, ["type"])
            raise InvalidEvent(f"{where}: /v1/{kind} takes {kind!r} events, not {given!r:.64}")
    size = json_values.checked_size(raw, prefix)
    if size > MAX_EVENT_BYTES:
        raise InvalidEvent(
            f"{prefix or 'body'}: event is {size} bytes; the limit is {MAX_EVENT_BYTES} (32 KB)"
        )
    try:
        event = SegmentEvent.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        raise InvalidEvent(f"{json_values.path(prefix, first['loc'])}: {message}") from None
    problem = stored_string_problem(event)
    if problem:
        loc, message = problem
        raise InvalidEvent(f"{json_values.path(prefix, loc)}: {message}")
    try:
        _timestamp(event, received_at)
    except TooEarly as exc:
        raise InvalidEvent(f"{json_values.path(prefix, ['sentAt'])}: {exc}") from None
    return event


def _timestamp(event: SegmentEvent, received_at: datetime) -> datetime:
    claimed = event.timestamp or event.original_timestamp
    return event_time(claimed, event.sent_at, received_at)


def _row(event: SegmentEvent, source: str, received_at: datetime) -> dict[str, Any]:
    payload = event.model_dump(mode="json", by_alias=True, exclude_none=True)
    payload.setdefault("messageId", event.message_id)
    timestamp = _timestamp(event, received_at)
    # As Segment: `originalTimestamp` is what the client said, `timestamp` what we believe.
    if "timestamp" in payload:
        payload.setdefault("originalTimestamp", payload["timestamp"])
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


# PostgreSQL: the whole batch as one JSON array in one statement whose text never changes. A
# multi-row `INSERT … VALUES` is new text for every batch size, which the driver parses anew,
# and array parameters are escaped element by element in Python; one JSON document is
# encoded by the json module's C encoder and parsed by the server. Rows keep the order of the
# array, so ids follow the order of the batch.
_INSERT_JSON = text(
    """INSERT INTO events (source, message_id, type, name, user_id, anonymous_id, "timestamp",
                    received_at, payload, enqueued_at)
SELECT :source, r.message_id, r.type, r.name, r.user_id, r.anonymous_id, r.timestamp,
       :received_at, r.payload, :received_at
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(message_id text, type text, name text,
     user_id text, anonymous_id text, "timestamp" timestamptz, payload jsonb)
ON CONFLICT (source, message_id) DO NOTHING
RETURNING id"""
)
_IN_JSON = ("message_id", "type", "name", "user_id", "anonymous_id", "payload")


def _as_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(
        [
            {**{key: row[key] for key in _IN_JSON}, "timestamp": row["timestamp"].isoformat()}
            for row in rows
        ]
    )


def _keys(event: SegmentEvent) -> list[tuple[str, str]]:
    traits = event.traits if event.type == "identify" else None
    previous = event.previous_id if event.type == "alias" else None
    return erased.event_keys(event.user_id, event.anonymous_id, traits, previous)


def _not_erased(session: Session, events: list[SegmentEvent]) -> list[SegmentEvent]:
    """The events that name nobody who asked to be erased: the others are acknowledged like
    any event and dropped, so the shop's SDK does not resend them and nothing is stored."""
    digests = [{erased.digest(kind, value) for kind, value in _keys(e)} for e in events]
    gone = erased.erased_among(session, set().union(*digests))
    if not gone:
        return events
    kept = [e for e, mine in zip(events, digests, strict=True) if not gone & mine]
    instruments.count_dropped_erased("ingest", len(events) - len(kept))
    return kept


def store(
    session: Session,
    events: list[SegmentEvent],
    source: str,
    received_at: datetime | None = None,
) -> list[int]:
    """Insert the events a source sent, skipping messageIds already stored and events about
    erased people; return new ids. `received_at` is the one `parse_event` judged the times by
    (default: now)."""
    received_at = received_at or clock.now()
    for event in events:
        if not event.message_id:  # Segment assigns one when the client did not
            event.message_id = f"carillon-{uuid.uuid4()}"
    events = _not_erased(session, events)
    if not events:
        return []
    rows = [_row(e, source, received_at) for e in events]
    if is_postgres(session):
        params = {"source": source, "received_at": received_at, "rows": _as_json(rows)}
        ids = list(session.execute(_INSERT_JSON, params).scalars())
    else:
        # One cached statement with many parameter sets: SQLAlchemy batches it into multi-row
        # INSERTs ("insertmanyvalues") without compiling a new statement per batch size.
        stmt = (
            dialect_insert(session)(Event)
            .on_conflict_do_nothing(index_elements=[Event.source, Event.message_id])
            .returning(Event.id)
        )
        ids = list(session.connection().execute(stmt, rows).scalars())
    if ids:
        enqueue(session, PROCESS_EVENTS, ids)
    return ids
