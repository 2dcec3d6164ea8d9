"""Channel adapter tests: each adapter against its provider's local stand-in, over real HTTP.

No database or queue is involved, so the suite-wide autouse fixtures (schema migration,
table cleaning) are replaced by no-ops: these tests stay fast and run anywhere. The stand-ins
start once per session and are reset before each test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from app.settings import Settings
from tests.providers.meta import MetaGraphServer
from tests.providers.sendgrid import SendGridServer
from tests.providers.twilio import TwilioServer

# Every credential explicitly unset, so nothing leaks in from the environment.
NO_CREDENTIALS: dict[str, Any] = {
    "sendgrid_api_key": None,
    "twilio_account_sid": None,
    "twilio_auth_token": None,
    "twilio_from_number": None,
    "twilio_messaging_service_sid": None,
    "meta_access_token": None,
}


@pytest.fixture(scope="session", autouse=True)
def schema() -> None:
    """No database needed."""


@pytest.fixture(autouse=True)
def clean_state() -> Iterator[None]:
    """No database or broker state to reset."""
    yield


@pytest.fixture
def make_settings() -> Callable[..., Settings]:
    def build(**values: Any) -> Settings:
        return Settings(**{**NO_CREDENTIALS, "provider_timeout_seconds": 5.0, **values})

    return build


@pytest.fixture(scope="session")
def _sendgrid() -> Iterator[SendGridServer]:
    with SendGridServer(api_key="SG.test-key") as server:
        yield server


@pytest.fixture(scope="session")
def _twilio() -> Iterator[TwilioServer]:
    with TwilioServer() as server:
        yield server


@pytest.fixture(scope="session")
def _meta() -> Iterator[MetaGraphServer]:
    with MetaGraphServer() as server:
        yield server


@pytest.fixture
def sendgrid_server(_sendgrid: SendGridServer) -> SendGridServer:
    _sendgrid.reset()
    return _sendgrid


@pytest.fixture
def twilio_server(_twilio: TwilioServer) -> TwilioServer:
    _twilio.reset()
    return _twilio


@pytest.fixture
def meta_server(_meta: MetaGraphServer) -> MetaGraphServer:
    _meta.reset()
    return _meta
