"""The bound for ingest: a bare FastAPI handler that takes the same `POST /v1/batch` body,
checks it with pydantic and `COPY`s the events into PostgreSQL: no authentication, no
deduplication, no queue, nothing but parsing and storing. Its own uvicorn process, like
`carillon api`:

    BENCH_DATABASE_URL=postgresql://... .venv/bin/python -m uvicorn bench.bare_ingest:app
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import psycopg
from fastapi import FastAPI, Request, Response
from psycopg.types.json import Jsonb
from pydantic import BaseModel, Field

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


pool: asyncio.Queue[psycopg.AsyncConnection[Any]] = asyncio.Queue()


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    url = os.environ["BENCH_DATABASE_URL"]
    for _ in range(CONNECTIONS):
        pool.put_nowait(await psycopg.AsyncConnection.connect(url, autocommit=True))
    connection = await pool.get()
    await connection.execute(TABLE)
    pool.put_nowait(connection)
    yield
    while not pool.empty():
        await (await pool.get()).close()


app = FastAPI(lifespan=lifespan)


@app.get("/healthz")
async def healthz() -> Response:
    return Response(status_code=200)


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
