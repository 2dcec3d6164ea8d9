"""The bound for a transactional send: a bare FastAPI handler that takes the same `POST
/v1/messages` body, checks it with pydantic and INSERTs one row into PostgreSQL: no send key,
no person, no consent, no rendering, no queue. Its own uvicorn process, like `carillon api`:

    BENCH_DATABASE_URL=postgresql://... .venv/bin/python -m uvicorn bench.bare_send:app
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from psycopg.types.json import Jsonb
from pydantic import BaseModel

from bench.bare_app import bare_app

CONNECTIONS = 10  # as many as `carillon api`'s pool keeps
TABLE = """CREATE TABLE IF NOT EXISTS bare_messages (
    id bigserial PRIMARY KEY, phone text, channel text, content jsonb,
    idempotency_key text UNIQUE, created_at timestamptz DEFAULT now())"""
INSERT = (
    "INSERT INTO bare_messages (phone, channel, content, idempotency_key) "
    "VALUES (%s, %s, %s, %s) RETURNING id"
)


class Message(BaseModel):
    phone: str
    channel: str
    content: dict[str, Any]


app, pool = bare_app(TABLE, CONNECTIONS)


@app.post("/v1/messages")
async def send(request: Request) -> JSONResponse:
    message = Message.model_validate_json(await request.body())
    key = request.headers.get("idempotency-key")
    connection = await pool.get()
    try:
        cursor = await connection.execute(
            INSERT, (message.phone, message.channel, Jsonb(message.content), key)
        )
        row = await cursor.fetchone()
    finally:
        pool.put_nowait(connection)
    delivery_id = row[0] if row else None
    return JSONResponse({"success": True, "deliveryId": delivery_id}, status_code=202)
