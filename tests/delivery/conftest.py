"""Send-time policy tests: journeys written for each test, people and events stored and routed by
the real code, messages delivered by `service.deliver` (the worker's own job body) or by the
worker itself where the hand-over matters. Settings come through the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from app.db import session_scope
from app.delivery import history, models, service
from app.delivery.models import Delivery, DeliveryEvent
from app.events import routing
from app.journeys import catalog
from app.settings import get_settings
from tests.ops.conftest import _twilio_server, ingest, twilio  # noqa: F401  (fixtures)

EMAIL = '{channel: email, subject: Bonjour, html: "<p>Bonjour</p>", text: Bonjour}'
SMS = "{channel: sms, text: Bonjour}"


def journey_yaml(journey_id: str, event: str, send: str = EMAIL, policy: str = "") -> str:
    """A one-message journey; `policy` is YAML lines such as "priority: 5\\n"."""
    return (
        f"id: {journey_id}\nname: {journey_id}\ntrigger:\n  event: {event}\n"
        f"re_entry: always\n{policy}steps:\n  - send: {send}\n"
    )


def load(directory: Path, *texts: str) -> None:
    """Write the journeys and sync them, as `serve` does at start."""
    for index, text in enumerate(texts):
        (directory / f"j{index}.yaml").write_text(text, encoding="utf-8")
    assert catalog.sync_directory(directory) == []


def configure(env: pytest.MonkeyPatch, **values: str) -> None:
    """`quiet_hours="sms=…"` sets CARILLON_QUIET_HOURS, and so on."""
    for name, value in values.items():
        env.setenv(f"CARILLON_{name.upper()}", value)
    get_settings.cache_clear()


def person(user: str, **traits: Any) -> dict[str, Any]:
    return {
        "type": "identify",
        "userId": user,
        "traits": {"email": f"{user}@example.com", "phone": "+33612345678", **traits},
    }


def route(*events: dict[str, Any]) -> None:
    """Store and route the events now (journeys run, deliveries planned), without a worker."""
    for event_id in ingest(*events):
        routing.process_one(event_id)


def track(user: str, event: str) -> dict[str, Any]:
    return {"type": "track", "userId": user, "event": event}


def rows() -> list[Delivery]:
    with session_scope() as session:
        return list(session.scalars(select(Delivery).order_by(Delivery.id)))


def row(delivery_id: int) -> Delivery:
    with session_scope() as session:
        found = session.get(Delivery, delivery_id)
        assert found is not None
        return found


def by_journey(journey_id: str) -> Delivery:
    [found] = [d for d in rows() if d.journey_id == journey_id]
    return found


def deliver(delivery_id: int) -> Delivery:
    service.deliver(delivery_id)
    return row(delivery_id)


def held(delivery_id: int) -> list[tuple[str, str | None]]:
    """What the send-time checks recorded in the delivery's history."""
    with session_scope() as session:
        events: list[DeliveryEvent] = history.of(session, delivery_id)
        return [(e.kind, e.detail) for e in events if e.source == "policy"]


SENT_OR_DRY = (models.SENT, models.DRY_RUN)


def refusal_at_start(env: pytest.MonkeyPatch, variable: str, value: str) -> str:
    """What Carillon says when it refuses to start with `variable=value`."""
    env.setenv(variable, value)
    get_settings.cache_clear()
    with pytest.raises(ValidationError) as raised:
        get_settings()
    said = str(raised.value)
    assert variable in said
    return said
