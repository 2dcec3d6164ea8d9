"""`/healthz`: the process answers (for a liveness probe: restart me if this fails).
`/readyz`: the database and the broker answer (for a readiness probe: send me traffic);
503 naming what is down, so a load balancer stops routing here and a person sees why."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from app.db import get_engine
from app.ops import broker_state
from app.queue import get_broker

router = APIRouter(tags=["ops"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _checks() -> dict[str, str]:
    checks: dict[str, str] = {}
    try:
        with get_engine().connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}: {exc}".splitlines()[0]
    try:
        broker_state.ping(get_broker())
        checks["broker"] = "ok"
    except Exception as exc:
        checks["broker"] = f"unreachable: {type(exc).__name__}: {exc}".splitlines()[0]
    return checks


@router.get("/readyz")
async def readyz() -> JSONResponse:
    checks = await run_in_threadpool(_checks)
    down = [name for name, state in checks.items() if state != "ok"]
    if down:
        reason = "; ".join(f"{name} {checks[name]}" for name in down)
        return JSONResponse(
            {"status": "unavailable", "reason": reason, "checks": checks}, status_code=503
        )
    return JSONResponse({"status": "ready", "checks": checks})
