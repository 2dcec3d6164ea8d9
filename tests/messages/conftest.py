"""Transactional send tests: a send key set through the environment, a journey file of named
transactional messages, and the app in-process (the provider stand-ins where a test sends)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.helpers import configure, load

SEND_KEY = "shop-backend-send-key-0123456789"
OTHER_SEND_KEY = "billing-send-key-0123456789abcd"
READ_KEY = "crm-read-key-0123456789abcdef"

RECEIPTS = """\
id: receipts
name: Receipts
kind: transactional
trigger:
  event: Receipt Never Tracked
messages:
  order-receipt:
    email:
      subject: "Commande {{ event.properties.order_id }}"
      html: "<p>Merci {{ profile.traits.first_name }}, total {{ event.properties.total }} EUR</p>"
    sms:
      text: "Commande {{ event.properties.order_id }} confirmee."
    locales:
      en:
        email:
          subject: "Order {{ event.properties.order_id }}"
          html: "<p>Thank you {{ profile.traits.first_name }}</p>"
  password-reset:
    email:
      subject: Reset
      html: "<p>Code {{ event.properties.code }}</p>"
steps:
  - send: {channel: email, message: order-receipt}
"""


def bearer(token: str = SEND_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def receipt(user: str = "alice", **changes: Any) -> dict[str, Any]:
    """A request for the order receipt by e-mail, to `user`."""
    return {
        "userId": user,
        "channel": "email",
        "message": "order-receipt",
        "data": {"order_id": "A-1001", "total": 42.5},
        **changes,
    }


@pytest.fixture
def keys(settings_env: pytest.MonkeyPatch) -> None:
    configure(
        settings_env,
        send_keys=f"shop={SEND_KEY},billing={OTHER_SEND_KEY}",
        read_keys=f"crm={READ_KEY}",
    )


@pytest.fixture
def client(keys: None, tmp_path: Path) -> Iterator[TestClient]:
    load(tmp_path, RECEIPTS)
    yield TestClient(create_app())
