"""Adds the ops routes (health, metrics, dashboard, JSON API) and the request-context
middleware to the FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI

from app.ops import api, dashboard, health
from app.ops.middleware import RequestContext


def install(app: FastAPI) -> None:
    app.add_middleware(RequestContext)
    app.include_router(health.router)
    app.include_router(api.metrics_router)
    app.include_router(dashboard.router)
    app.include_router(api.router)
