"""Profile API tests: an admin token and a read key set through the environment, the shipped
journeys loaded, and a person who went through them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.journeys import catalog
from app.main import create_app
from tests.helpers import REPO, Pipeline, basic, identify, track

ADMIN = "profiles-admin-token-0123456789"
READ_KEY = "crm-read-key-0123456789abcdef"

USER = "shopper-4242"
ANONYMOUS = "anon-7c1f9e"
EMAIL = "ada.lovelace@example.org"
PHONE = "+33698765432"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def keys(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("CARILLON_ADMIN_TOKEN", ADMIN)
    settings_env.setenv("CARILLON_READ_KEYS", f"crm={READ_KEY}")


@pytest.fixture
def client(keys: None) -> Iterator[TestClient]:
    catalog.sync_directory(REPO / "journeys")
    yield TestClient(create_app())


def post(client: TestClient, *events: dict[str, Any]) -> None:
    answer = client.post("/v1/batch", json={"batch": list(events)}, headers=basic())
    assert answer.status_code == 200, answer.text


def shopper(client: TestClient, pipeline: Pipeline) -> None:
    """A person known by every kind of identity, in all three shipped journeys: a welcome
    SMS sent (dry run), a Meta audience joined (dry run), a cart reminder waiting an hour."""
    post(
        client,
        {
            "type": "track",
            "anonymousId": ANONYMOUS,
            "event": "Product Viewed",
            "timestamp": "2026-11-02T07:00:00Z",
        },
        identify(
            USER,
            {"first_name": "Ada", "email": EMAIL, "phone": PHONE, "sms_opt_in": True},
            anonymousId=ANONYMOUS,
        ),
    )
    pipeline.drain()
    post(
        client,
        track(USER, "Newsletter Subscribed", timestamp="2026-11-02T09:00:00Z"),
        track(USER, "Instagram Post Liked", timestamp="2026-11-02T09:01:00Z"),
        track(
            USER,
            "Cart Abandoned",
            {"total": 99.5, "cart_url": "https://shop.example/c/1"},
            timestamp="2026-11-02T09:02:00Z",
        ),
    )
    pipeline.drain()
