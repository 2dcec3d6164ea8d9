"""The bound for ingest: a bare FastAPI handler that takes the same `POST /v1/batch` body,
checks it with pydantic and `COPY`s the events into PostgreSQL: no authentication, no
deduplication, no queue, nothing but parsing and storing. Its own uvicorn process, like
`carillon api`:

    BENCH_DATABASE_URL=postgresql://... .venv/bin/python -m uvicorn bench.bare_ingest:app
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import Request
from psycopg.types.json import Jsonb
from pydantic import BaseModel, Field

from bench.bare_app import bare_app

CONNECTIONS = 4  # as many as the benchmark's client threads
TABLE = """CREATE TABLE IF NOT EXISTS bare_events (
    message_id text, type text, name text, user_id text, "timestamp" timestamptz,
    properties jsonb, context jsonb)"""
COPY = 'COPY bare_events (message_id, type, name, user_id, "timestamp", properties, context) '
COPY += "FROM STDIN"


class Event(BaseModel):
    type: str
    event: str | None = None
    userId: str | None = None  # noqa: N815 (Segment's spelling)
    messageId: str  # noqa: N815
    timestamp: datetime
    properties: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)


class Batch(BaseModel):
    batch: list[Event]


app, pool = bare_app(TABLE, CONNECTIONS)


@app.post("/v1/batch")
async def batch(request: Request) -> dict[str, bool]:
    events = Batch.model_validate_json(await request.body()).batch
    connection = await pool.get()
    try:
        async with connection.cursor() as cursor, cursor.copy(COPY) as copy:
            for e in events:
                row = (e.messageId, e.type, e.event, e.userId, e.timestamp)
                await copy.write_row((*row, Jsonb(e.properties), Jsonb(e.context)))
    finally:
        pool.put_nowait(connection)
    return {"success": True}
