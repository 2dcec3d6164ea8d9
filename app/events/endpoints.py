"""Segment-compatible tracking API: `/v1/track|identify|page|screen|group|alias|batch`.

Any Segment or RudderStack SDK pointed at Carillon's host works unchanged: HTTP basic auth with
the write key as user name (or `writeKey` in the body), gzip bodies, Segment's size limits.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app import clock
from app.db import after_commit, session_dependency
from app.errors import BadInput, Unauthorized
from app.events.body import read_json
from app.events.openapi import KINDS, RESPONSES, BasicWriteKey, request_body
from app.events.schemas import MAX_BATCH_BYTES, MAX_EVENT_BYTES, SegmentEvent
from app.events.service import InvalidEvent, parse_event, store
from app.ops import instruments
from app.settings import get_settings

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["events"])

# Batch-level fields that apply to each event of the batch.
_SHARED = ("context", "sentAt")

HeaderKey = Annotated[str | None, Depends(BasicWriteKey())]
# One transaction per request, so nothing is half-written when the database fails: the client
# resends the same messageIds later, as Segment SDKs do on a 5xx, and dedup makes that safe
# even if a commit went through before its connection dropped.
IngestSession = Annotated[
    Session,
    Depends(
        session_dependency("database unavailable: retry later with the same messageIds"),
        scope="function",
    ),
]


def _source(header_key: str | None, body: Any) -> str:
    """The source a write key belongs to; 401 for a missing or unknown key."""
    key = header_key
    if not key and isinstance(body, dict) and isinstance(body.get("writeKey"), str):
        key = body["writeKey"]
    if not key:
        raise Unauthorized("missing write key: send it as the basic-auth user name or writeKey")
    source = get_settings().write_key_sources().get(key)
    if source is None:
        raise Unauthorized("unknown write key")
    return source


def _accepted(source: str, events: list[SegmentEvent]) -> None:
    instruments.count_ingested(source, [event.type for event in events])
    # Every messageId is known now (store assigns the missing ones): one line to grep for.
    ids = [event.message_id for event in events]
    extra = {"message_id": ids[0]} if len(ids) == 1 else {"message_ids": ids}
    log.info("accepted %d event(s) from source %s", len(ids), source, extra=extra)


async def _accept(
    session: Session, source: str, events: list[SegmentEvent], received_at: datetime
) -> JSONResponse:
    # The database call runs on the thread pool, off the event loop. The session commits once
    # the route returns, before the answer is sent; only then are the events counted.
    await run_in_threadpool(store, session, events, source, received_at)
    after_commit(session, lambda: _accepted(source, events))
    return JSONResponse({"success": True})


def _parse(
    raw: Any, received_at: datetime, prefix: str = "", kind: str | None = None
) -> SegmentEvent:
    try:
        return parse_event(raw, received_at, prefix, kind)
    except InvalidEvent as exc:
        raise BadInput(str(exc)) from None


async def _single(
    request: Request, header_key: str | None, session: Session, kind: str
) -> JSONResponse:
    body = await read_json(request, MAX_EVENT_BYTES)
    received_at = clock.now()
    source = _source(header_key, body)
    return await _accept(session, source, [_parse(body, received_at, kind=kind)], received_at)


@router.post("/batch", responses=RESPONSES, openapi_extra=request_body("batch"))
async def batch(request: Request, header_key: HeaderKey, session: IngestSession) -> JSONResponse:
    body = await read_json(request, MAX_BATCH_BYTES)
    received_at = clock.now()
    source = _source(header_key, body)
    if not isinstance(body, dict) or not isinstance(body.get("batch"), list):
        raise BadInput("batch: expected an object with a `batch` array of events")
    if not body["batch"]:
        raise BadInput("batch: the array is empty")
    # Batch-level `context` and `sentAt` (the Python SDK sends its sentAt here) apply to every
    # event that has none of its own.
    shared = {key: body[key] for key in _SHARED if body.get(key) is not None}
    if not isinstance(shared.get("context", {}), dict):
        raise BadInput("context: expected an object")
    events = []
    for index, raw in enumerate(body["batch"]):
        if isinstance(raw, dict):
            raw = {**shared, **raw}
        events.append(_parse(raw, received_at, f"batch[{index}]"))
    return await _accept(session, source, events, received_at)


def _route(kind: str) -> None:
    async def endpoint(
        request: Request, header_key: HeaderKey, session: IngestSession
    ) -> JSONResponse:
        return await _single(request, header_key, session, kind)

    endpoint.__name__ = kind
    router.add_api_route(
        f"/{kind}",
        endpoint,
        methods=["POST"],
        responses=RESPONSES,
        openapi_extra=request_body(kind),
    )


for _kind in KINDS:
    _route(_kind)
