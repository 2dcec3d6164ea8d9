"""Webhook tests: signatures made the way the providers make them, independently of the
verifiers under test; providers' local stand-ins for the sends the webhooks report on."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from sqlalchemy import select

from app import clock
from app.clock import ManualClock
from app.db import session_scope
from app.delivery.models import Delivery, DeliveryEvent
from app.journeys import catalog
from app.journeys.timers import fire_due
from app.main import create_app
from tests.helpers import SHIPPED, Pipeline, alice, cart, configure, deliveries, ingest
from tests.providers.sendgrid import SendGridServer
from tests.providers.twilio import TwilioServer

PUBLIC_URL = "https://carillon.example.com"
SECRET = "webhook-tests-secret-0123456789"


@dataclass
class Keys:
    private: ec.EllipticCurvePrivateKey
    public_base64: (
        str  # as SendGrid's settings page shows it: base64 of the DER SubjectPublicKeyInfo
    )


def new_keys() -> Keys:
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return Keys(private, base64.b64encode(der).decode())


def sendgrid_headers(keys: Keys, body: bytes, timestamp: str | None = None) -> dict[str, str]:
    """SendGrid's Event Webhook signing: ECDSA P-256 / SHA-256 over timestamp + raw body,
    base64 of the DER signature; signed now unless a timestamp is given."""
    timestamp = timestamp or str(int(clock.now().timestamp()))
    signature = keys.private.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
    }


def body_of(events: list[dict[str, Any]]) -> bytes:
    return json.dumps(events).encode()


def history_rows() -> list[tuple[int, str, str, str | None, str | None]]:
    with session_scope() as session:
        rows = session.scalars(select(DeliveryEvent).order_by(DeliveryEvent.id))
        return [(r.delivery_id, r.source, r.kind, r.detail, r.external_id) for r in rows]


@pytest.fixture(scope="module")
def _sendgrid() -> Iterator[SendGridServer]:
    with SendGridServer(api_key="SG.webhooks") as server:
        yield server


@pytest.fixture(scope="module")
def _twilio() -> Iterator[TwilioServer]:
    with TwilioServer() as server:
        yield server


@pytest.fixture
def keys() -> Keys:
    return new_keys()


@pytest.fixture
def providers(
    settings_env: pytest.MonkeyPatch,
    _sendgrid: SendGridServer,
    _twilio: TwilioServer,
    keys: Keys,
) -> tuple[SendGridServer, TwilioServer]:
    """Both channels configured against the stand-ins, the webhooks verifiable."""
    _sendgrid.reset()
    _twilio.reset()
    configure(
        settings_env,
        {
            **_sendgrid.settings_overrides(),
            **_twilio.settings_overrides(),
            "sendgrid_webhook_public_key": keys.public_base64,
            "public_url": PUBLIC_URL,
            "secret_key": SECRET,
        },
    )
    return _sendgrid, _twilio


@pytest.fixture
def sendgrid(providers: tuple[SendGridServer, TwilioServer]) -> SendGridServer:
    return providers[0]


@pytest.fixture
def twilio(providers: tuple[SendGridServer, TwilioServer]) -> TwilioServer:
    return providers[1]


@pytest.fixture
def client() -> TestClient:
    """The API without its lifespan (journeys are synced by the fixtures that need them)."""
    return TestClient(create_app(), base_url=PUBLIC_URL)


def send_cart_reminder(pipeline: Pipeline, manual_clock: ManualClock, total: float = 42.5) -> None:
    """Alice abandons a cart; an hour later the reminder e-mail goes to SendGrid."""
    catalog.sync_directory(SHIPPED)
    ingest(alice(), cart(total))
    pipeline.drain()
    manual_clock.advance(timedelta(hours=1))
    fire_due(100)
    pipeline.drain()


@pytest.fixture
def email_delivery(
    sendgrid: SendGridServer, pipeline: Pipeline, manual_clock: ManualClock
) -> Delivery:
    send_cart_reminder(pipeline, manual_clock)
    [delivery] = deliveries()
    assert (delivery.channel, delivery.status) == ("email", "sent"), delivery.error
    return delivery
