"""The three seed scenarios from HTTP event to provider call, through real Carillon processes.

On PostgreSQL + Redis the production topology runs: `carillon api`, `carillon worker` and
`carillon scheduler` as three processes. On the embedded default, one `carillon serve`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from app.db import session_scope
from app.delivery import models as delivery
from app.delivery.models import Delivery
from app.events.models import Event
from app.journeys.models import JourneyInstance, Timer
from app.profiles.models import USER_ID, Identity
from channels.meta_audience.adapter import normalize_email, sha256_hex
from tests.helpers import PRODUCTION
from tests.processes import (
    PRODUCTION_ROLES,
    SERVE,
    Carillon,
    Providers,
    fast_journeys,
    provider_servers,
    running_carillon,
)


@pytest.fixture
def providers() -> Iterator[Providers]:
    with provider_servers() as servers:
        yield servers


@pytest.fixture
def carillon(tmp_path: Path, providers: Providers) -> Iterator[Carillon]:
    env = {
        **providers.env(),
        "CARILLON_JOURNEYS_DIR": str(fast_journeys(tmp_path / "journeys")),
        "CARILLON_SWEEP_AFTER_SECONDS": "5",
    }
    roles = PRODUCTION_ROLES if PRODUCTION else SERVE
    with running_carillon(tmp_path, env, roles) as running:
        yield running


def now() -> str:
    return datetime.now(UTC).isoformat()


def identify(user: str, first_name: str, email: str, phone: str) -> dict[str, Any]:
    traits = {"first_name": first_name, "email": email, "phone": phone, "sms_opt_in": True}
    return {"userId": user, "traits": traits, "timestamp": now()}


def track(user: str, name: str, **properties: Any) -> dict[str, Any]:
    return {"userId": user, "event": name, "properties": properties, "timestamp": now()}


def count(model: Any, *where: Any) -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def trips_of(user: str) -> list[tuple[str, str | None]]:
    with session_scope() as session:
        rows = session.execute(
            select(JourneyInstance.status, JourneyInstance.exit_reason)
            .join(Identity, Identity.profile_id == JourneyInstance.profile_id)
            .where(Identity.kind == USER_ID, Identity.value == user)
        )
        return [(row.status, row.exit_reason) for row in rows]


def settled() -> bool:
    """Every event routed, no wait left to fire, no delivery left to make."""
    open_deliveries = Delivery.status.in_([delivery.PENDING, delivery.SENDING])
    return (
        count(Event, Event.processed_at.is_(None)) == 0
        and count(Timer, Timer.status == "pending") == 0
        and count(Delivery, open_deliveries) == 0
    )


def test_three_scenarios_reach_the_providers(carillon: Carillon, providers: Providers) -> None:
    people = {
        "bob": ("Bob", "bob@example.com", "+33611111111"),
        "alice": ("Alice", "alice@example.com", "+33612345678"),
        "carol": ("Carol", "carol@example.com", "+33622222222"),
        "dave": ("Dave", "Dave.Liker@Example.com", "+33633333333"),
    }
    for user, person in people.items():
        assert carillon.post("/v1/identify", identify(user, *person)).status_code == 200

    cart = {"total": 42.5, "cart_url": "https://shop.example/cart/1"}
    # Bob orders while his reminder waits: it must never be sent.
    assert carillon.post("/v1/track", track("bob", "Cart Abandoned", **cart)).status_code == 200
    carillon.wait_until("bob waits for his reminder", lambda: len(trips_of("bob")) == 1)
    assert carillon.post("/v1/track", track("bob", "Order Completed")).status_code == 200
    assert carillon.post("/v1/track", track("alice", "Cart Abandoned", **cart)).status_code == 200
    newsletter = track("carol", "Newsletter Subscribed")
    assert carillon.post("/v1/track", newsletter).status_code == 200
    # The Segment SDKs send everything through /v1/batch.
    like = {"type": "track", **track("dave", "Instagram Post Liked", post_id="p1")}
    assert carillon.post("/v1/batch", {"batch": [like]}).status_code == 200

    carillon.wait_until("three deliveries made", lambda: count(Delivery) == 3 and settled())

    [mail] = providers.sendgrid.requests
    assert mail.path == "/v3/mail/send"
    assert mail.header("authorization") == f"Bearer {providers.sendgrid.api_key}"
    [personalization] = mail.body["personalizations"]
    assert personalization["to"] == [{"email": "alice@example.com"}]
    assert mail.body["subject"] == "Alice, votre panier vous attend"
    parts = {part["type"]: part["value"] for part in mail.body["content"]}
    assert "42.5 €" in parts["text/plain"] and "PANIER10" in parts["text/html"]

    [sms] = providers.twilio.requests
    assert sms.path == f"/2010-04-01/Accounts/{providers.twilio.account_sid}/Messages.json"
    assert sms.body["To"] == "+33622222222"
    assert sms.body["Body"].startswith("Bienvenue Carol !")

    [audience] = providers.meta.requests
    assert audience.path == "/v21.0/23850000000000001/users"
    payload = json.loads(audience.body["payload"])
    email_hash = sha256_hex(normalize_email("Dave.Liker@Example.com"))
    assert email_hash in json.dumps(payload["data"])
    assert "example.com" not in audience.text.lower()  # no raw e-mail leaves for Meta

    with session_scope() as session:
        statuses = {
            row.channel: row.status
            for row in session.execute(select(Delivery.channel, Delivery.status))
        }
    assert statuses == {"email": "sent", "sms": "sent", "meta_audience": "sent"}
    assert trips_of("bob") == [("exited", "exit_when: Order Completed")]
