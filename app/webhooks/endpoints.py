"""The webhook routes: the unsubscribe link, and each channel's own provider callbacks (a
channel declares its routers in its spec)."""

from __future__ import annotations

from fastapi import APIRouter

from app.webhooks import unsubscribe_page
from channels import registry

router = APIRouter(tags=["webhooks"])
router.include_router(unsubscribe_page.router)
for _spec in registry.specs().values():
    for _router in _spec.routers():
        router.include_router(_router)
