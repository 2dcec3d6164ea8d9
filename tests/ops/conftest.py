"""Ops tests: an admin token set through the environment, and an app to call."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.db import session_scope
from app.delivery import service
from app.delivery.models import Delivery
from app.events.schemas import SegmentEvent
from app.events.service import store
from app.main import create_app
from app.settings import get_settings
from tests.providers.twilio import TwilioServer

TOKEN = "ops-test-token-0123456789"


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def admin(settings_env: pytest.MonkeyPatch) -> str:
    """CARILLON_ADMIN_TOKEN set for this test."""
    settings_env.setenv("CARILLON_ADMIN_TOKEN", TOKEN)
    return TOKEN


@pytest.fixture
def no_admin(settings_env: pytest.MonkeyPatch) -> None:
    """CARILLON_ADMIN_TOKEN unset for this test."""
    settings_env.delenv("CARILLON_ADMIN_TOKEN", raising=False)


@pytest.fixture
def client() -> Iterator[TestClient]:
    """The API without its lifespan: journeys are synced by each test that needs them."""
    yield TestClient(create_app())


@pytest.fixture(scope="module")
def _twilio_server() -> Iterator[TwilioServer]:
    with TwilioServer() as server:
        yield server


@pytest.fixture
def twilio(settings_env: pytest.MonkeyPatch, _twilio_server: TwilioServer) -> TwilioServer:
    """The SMS channel configured and pointed at Twilio's local stand-in."""
    _twilio_server.reset()
    for field, value in _twilio_server.settings_overrides().items():
        name = field.upper() if field.startswith("twilio_") and field != "twilio_base_url" else ""
        name = name or f"CARILLON_{field.upper()}"
        if value is None:
            settings_env.delenv(name, raising=False)
        else:
            settings_env.setenv(name, str(value))
    get_settings.cache_clear()
    service.channels.cache_clear()
    return _twilio_server


def newsletter_signup(user: str, phone: str = "+33612345678") -> list[dict[str, Any]]:
    """A person with a phone number who subscribes: the welcome SMS journey."""
    return [
        {
            "type": "identify",
            "userId": user,
            "traits": {"first_name": "Ada", "phone": phone, "sms_opt_in": True},
        },
        {"type": "track", "userId": user, "event": "Newsletter Subscribed"},
    ]


def ingest(*events: dict[str, Any]) -> list[int]:
    with session_scope() as session:
        return store(session, [SegmentEvent.model_validate(e) for e in events], "default")


def only_delivery() -> Delivery:
    with session_scope() as session:
        [delivery] = session.scalars(select(Delivery)).all()
        return delivery
