"""WhatsApp channel tests: the adapter against a local Twilio stand-in over real sockets, and
journeys sending through the real pipeline, with webhooks signed as Twilio signs them.

The adapter tests of tests/channels need no database; these also run journeys end to end, so
the suite's database fixtures are taken back here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from urllib.parse import urlencode

import httpx
import pytest
from fastapi.testclient import TestClient

from app.delivery import service
from app.main import create_app
from app.settings import get_settings
from tests.channels.whatsapp.twilio_whatsapp import TEST_WHATSAPP_FROM, TwilioWhatsAppServer
from tests.helpers import clean_state as clean_state  # the database fixtures
from tests.helpers import schema as schema
from tests.helpers import twilio_signature

PUBLIC_URL = "https://carillon.example.com"
PHONE = "+33612345678"


@pytest.fixture(scope="session")
def _whatsapp_twilio() -> Iterator[TwilioWhatsAppServer]:
    with TwilioWhatsAppServer() as server:
        yield server


@pytest.fixture
def twilio(_whatsapp_twilio: TwilioWhatsAppServer) -> TwilioWhatsAppServer:
    _whatsapp_twilio.reset()
    return _whatsapp_twilio


@pytest.fixture
def whatsapp_env(
    settings_env: pytest.MonkeyPatch,
) -> Iterator[Callable[..., None]]:
    """Set environment variables for one test; every settings cache is rebuilt around it."""

    def configure(**variables: str | None) -> None:
        for name, value in variables.items():
            if value is None:
                settings_env.delenv(name, raising=False)
            else:
                settings_env.setenv(name, value)
        get_settings.cache_clear()
        service.channels.cache_clear()

    configure()
    yield configure
    settings_env.undo()
    get_settings.cache_clear()
    service.channels.cache_clear()


@pytest.fixture
def live(whatsapp_env: Callable[..., None], twilio: TwilioWhatsAppServer) -> TwilioWhatsAppServer:
    """The WhatsApp channel configured against the stand-in (SMS left dry), the webhooks
    verifiable."""
    whatsapp_env(
        TWILIO_ACCOUNT_SID=twilio.account_sid,
        TWILIO_AUTH_TOKEN=twilio.auth_token,
        TWILIO_FROM_NUMBER=None,
        TWILIO_MESSAGING_SERVICE_SID=None,
        CARILLON_TWILIO_BASE_URL=twilio.base_url,
        CARILLON_WHATSAPP_FROM=TEST_WHATSAPP_FROM,
        CARILLON_WHATSAPP_MESSAGING_SERVICE_SID=None,
        CARILLON_PUBLIC_URL=PUBLIC_URL,
    )
    return twilio


@pytest.fixture
def client() -> TestClient:
    return TestClient(create_app(), base_url=PUBLIC_URL)


def signed_post(
    client: TestClient, token: str, path: str, params: dict[str, str]
) -> httpx.Response:
    """A form POST signed as Twilio signs its callbacks."""
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": twilio_signature(token, PUBLIC_URL + path, params),
    }
    return client.post(path, content=urlencode(params), headers=headers)
