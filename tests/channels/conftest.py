"""Channel adapter tests: each adapter against its provider's local stand-in, over real HTTP.

No database or queue is involved, so the suite-wide autouse fixtures (schema migration,
table cleaning) are replaced by no-ops: these tests stay fast and run anywhere. The stand-ins
start once per session and are reset before each test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from app.settings import Settings, get_settings
from channels import registry
from channels.settings import variables
from tests.providers.meta import MetaGraphServer
from tests.providers.sendgrid import SendGridServer
from tests.providers.twilio import TwilioServer


@pytest.fixture(scope="session", autouse=True)
def schema() -> None:
    """No database needed."""


@pytest.fixture(autouse=True)
def clean_state() -> Iterator[None]:
    """No database or broker state to reset."""
    yield


@pytest.fixture
def make_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Settings]]:
    """Settings as a deployment gives them: each field, Carillon's or a channel's, set through
    its environment variable, and every channel variable not given unset, so the channels read
    their own settings as they do in production (`channels.settings.read`)."""
    names = {field: f"CARILLON_{field.upper()}" for field in Settings.model_fields}
    for model in registry.settings_models():
        names |= variables(model)

    def build(**values: Any) -> Settings:
        for name in registry.variables():
            monkeypatch.delenv(name, raising=False)
        for field, value in {"provider_timeout_seconds": 5.0, **values}.items():
            if value is not None:
                monkeypatch.setenv(names[field], str(value))
        get_settings.cache_clear()
        return get_settings()

    yield build
    monkeypatch.undo()
    get_settings.cache_clear()


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
