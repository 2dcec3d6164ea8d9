"""What the bounds' bare FastAPI apps share (`bare_ingest`, `bare_send`): a pool of psycopg
connections opened at start, their table made, and `/healthz` for the harness to wait on."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from fastapi import FastAPI, Response

Pool = asyncio.Queue[psycopg.AsyncConnection[Any]]


def bare_app(table: str, connections: int) -> tuple[FastAPI, Pool]:
    """An app whose pool of `connections` opens at start (on BENCH_DATABASE_URL, autocommit)
    after making `table` (a `CREATE TABLE IF NOT EXISTS`)."""
    pool: Pool = asyncio.Queue()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        url = os.environ["BENCH_DATABASE_URL"]
        for _ in range(connections):
            pool.put_nowait(await psycopg.AsyncConnection.connect(url, autocommit=True))
        connection = await pool.get()
        await connection.execute(table)
        pool.put_nowait(connection)
        yield
        while not pool.empty():
            await (await pool.get()).close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(status_code=200)

    return app, pool
