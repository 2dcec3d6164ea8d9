"""Segment-compatible tracking API: `/v1/track|identify|page|screen|group|alias|batch`.

Any Segment or RudderStack SDK pointed at Carillon's host works unchanged: HTTP basic auth with
the write key as user name (or `writeKey` in the body), gzip bodies, Segment's size limits.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import zlib
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.concurrency import run_in_threadpool

from app.db import session_scope
from app.errors import Rejected
from app.events.schemas import MAX_BATCH_BYTES, MAX_EVENT_BYTES, SegmentEvent
from app.events.service import InvalidEvent, parse_event, store
from app.ops import instruments
from app.settings import get_settings

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["events"])


# Seconds a client should wait before resending when the database is unreachable.
RETRY_AFTER_SECONDS = 5


async def _body(request: Request, limit: int) -> Any:
    raw = await request.body()
    if request.headers.get("content-encoding", "").lower() == "gzip":
        inflater = zlib.decompressobj(wbits=31)
        try:
            raw = inflater.decompress(raw, limit + 1)
        except zlib.error as exc:
            raise Rejected(400, f"body: invalid gzip data ({exc})") from None
    if len(raw) > limit:
        raise Rejected(400, f"body: request is larger than {limit // 1024} KB")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Rejected(400, f"body: malformed JSON ({exc})") from None


def _source(request: Request, body: Any) -> str:
    """The source a write key belongs to; 401 for a missing or unknown key."""
    key = None
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("basic "):
        try:
            key = base64.b64decode(auth[6:], validate=True).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            raise Rejected(401, "Authorization: malformed basic credentials") from None
    if not key and isinstance(body, dict) and isinstance(body.get("writeKey"), str):
        key = body["writeKey"]
    if not key:
        raise Rejected(401, "missing write key: send it as the basic-auth user name or writeKey")
    source = get_settings().write_key_sources().get(key)
    if source is None:
        raise Rejected(401, "unknown write key")
    return source


def _store(source: str, events: list[SegmentEvent]) -> None:
    with session_scope() as session:
        store(session, events, source)


async def _accept(source: str, events: list[SegmentEvent]) -> JSONResponse:
    # The database call runs on the thread pool, off the event loop.
    try:
        await run_in_threadpool(_store, source, events)
    except (OperationalError, InterfaceError) as exc:
        # One transaction per request, so nothing half-written; the client resends the same
        # messageIds later, as Segment SDKs do on a 5xx, and dedup makes that safe even if a
        # commit went through before its connection dropped.
        log.warning("database unavailable, answered 503: %s", str(exc).splitlines()[0])
        raise Rejected(
            503,
            "database unavailable: retry later with the same messageIds",
            {"Retry-After": str(RETRY_AFTER_SECONDS)},
        ) from None
    instruments.count_ingested(source, [event.type for event in events])
    # Every messageId is known now (store assigns the missing ones): one line to grep for.
    ids = [event.message_id for event in events]
    extra = {"message_id": ids[0]} if len(ids) == 1 else {"message_ids": ids}
    log.info("accepted %d event(s) from source %s", len(ids), source, extra=extra)
    return JSONResponse({"success": True})


async def _single(request: Request, kind: str) -> JSONResponse:
    body = await _body(request, MAX_EVENT_BYTES)
    source = _source(request, body)
    if isinstance(body, dict):
        body = {**body, "type": body.get("type", kind)}
        if body["type"] != kind:
            raise Rejected(400, f"type: /v1/{kind} takes {kind!r} events, not {body['type']!r}")
    try:
        event = parse_event(body)
    except InvalidEvent as exc:
        raise Rejected(400, str(exc)) from None
    return await _accept(source, [event])


@router.post("/batch")
async def batch(request: Request) -> JSONResponse:
    body = await _body(request, MAX_BATCH_BYTES)
    source = _source(request, body)
    if not isinstance(body, dict) or not isinstance(body.get("batch"), list):
        raise Rejected(400, "batch: expected an object with a `batch` array of events")
    if not body["batch"]:
        raise Rejected(400, "batch: the array is empty")
    context = body.get("context")
    events = []
    for index, raw in enumerate(body["batch"]):
        if isinstance(raw, dict) and isinstance(context, dict) and "context" not in raw:
            raw = {**raw, "context": context}  # batch-level context applies to every event
        try:
            events.append(parse_event(raw, f"batch[{index}]"))
        except InvalidEvent as exc:
            raise Rejected(400, str(exc)) from None
    return await _accept(source, events)


def _route(kind: str) -> None:
    async def endpoint(request: Request) -> JSONResponse:
        return await _single(request, kind)

    endpoint.__name__ = kind
    router.add_api_route(f"/{kind}", endpoint, methods=["POST"])


for _kind in ("track", "identify", "page", "screen", "group", "alias"):
    _route(_kind)
