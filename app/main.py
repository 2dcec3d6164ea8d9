"""The FastAPI application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.exc import InterfaceError, OperationalError

from app import migrate
from app.embedded import Embedded
from app.errors import CarillonError, answer
from app.events.endpoints import router as events_router
from app.journeys import catalog
from app.messages.endpoints import router as messages_router
from app.ops.install import install as install_ops
from app.profiles.endpoints import router as profiles_router
from app.segments import catalog as segment_files
from app.settings import get_settings
from app.webhooks.endpoints import router as webhooks_router

log = logging.getLogger(__name__)


def create_app(*, embedded: bool = False) -> FastAPI:
    """`embedded=True` is `carillon serve`: migrate the SQLite file, then run the queue worker
    and the scheduler inside this process."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if embedded:
            migrate.upgrade()
        try:
            catalog.sync_directory(get_settings().journeys_dir)
            segment_files.sync_directory(get_settings().segments_dir)
        except (OperationalError, InterfaceError) as exc:
            # Up without its database, the API answers /readyz 503 with the reason (and
            # /healthz 200) instead of exiting in a restart loop; the scheduler and
            # `carillon journeys reload` sync the journeys once the database is back.
            log.warning("database unreachable at start, journeys not synced: %s", exc)
        runner = None
        if embedded:
            runner = Embedded()
            runner.start()
        try:
            yield
        finally:
            if runner is not None:
                runner.stop()

    # No trailing-slash redirects: Starlette builds them from the Host header a client sends.
    app = FastAPI(title="Carillon", version="0.1.0", lifespan=lifespan, redirect_slashes=False)
    app.add_exception_handler(CarillonError, answer)
    app.include_router(events_router)
    # Transactional sends from a shop's backend (a send key).
    app.include_router(messages_router)
    # People's data: show, export, erase (admin token or a read key).
    app.include_router(profiles_router)
    # Provider feedback (SendGrid, Twilio) and the unsubscribe link.
    app.include_router(webhooks_router)
    # /healthz, /readyz, /metrics, /ops/* (queue state, dashboard) and the request-id middleware.
    install_ops(app)
    return app
