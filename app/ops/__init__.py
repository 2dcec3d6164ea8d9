"""Operations: queue state, metrics, health, structured logs and the dashboard (issue #6).

`install(app)` adds the ops routes and middleware to the FastAPI application; everything else
is imported where it is used.
"""

from __future__ import annotations

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    from app.ops import api, dashboard, health
    from app.ops.middleware import request_context

    app.middleware("http")(request_context)
    app.include_router(health.router)
    app.include_router(api.metrics_router)
    app.include_router(dashboard.router)
    app.include_router(api.router)
