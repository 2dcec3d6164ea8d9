"""Test setup: the real database and broker named by the environment.

`make test` runs the suite on the embedded default (a SQLite file, the in-process queue);
`.ci/run` runs it again with CARILLON_DATABASE_URL=postgresql+psycopg://… and
CARILLON_REDIS_URL=redis://…. Nothing is skipped in either pass.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

if "CARILLON_DATABASE_URL" not in os.environ:
    _tmp = tempfile.mkdtemp(prefix="carillon-test-")
    os.environ["CARILLON_DATABASE_URL"] = f"sqlite:///{_tmp}/test.db"
os.environ.setdefault(
    "CARILLON_JOURNEYS_DIR", str(Path(__file__).resolve().parent.parent / "journeys")
)
os.environ.setdefault(
    "CARILLON_SEGMENTS_DIR", str(Path(__file__).resolve().parent.parent / "segments")
)
os.environ.setdefault("CARILLON_WRITE_KEYS", "test-key,shop=shop-key")
# Production roles need the one signing secret; tests of the embedded default unset it.
os.environ.setdefault("CARILLON_SECRET_KEY", "test-secret-key-0123456789abcdef")
# No quiet hours unless a test sets them: the default (SMS 21:00-08:00) would make every test on
# the real clock depend on the hour it runs at.
os.environ.setdefault("CARILLON_QUIET_HOURS", "")

from channels import registry  # noqa: E402

# No channel setting leaks in from the machine's environment (provider credentials above all).
for _channel_var in registry.variables():
    os.environ.pop(_channel_var, None)

import pytest  # noqa: E402

from app import clock  # noqa: E402
from app.delivery import service  # noqa: E402
from app.settings import get_settings  # noqa: E402
from tests.helpers import PROVIDER_ENV, T0, Pipeline, Providers, configure  # noqa: E402
from tests.helpers import clean_state as clean_state  # noqa: E402  (the database fixtures)
from tests.helpers import schema as schema  # noqa: E402
from tests.providers.meta import MetaGraphServer  # noqa: E402
from tests.providers.sendgrid import SendGridServer  # noqa: E402
from tests.providers.twilio import TwilioServer  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _connections_released() -> Iterator[None]:
    """The sending loop's pooled connections closed at the end, as a worker closes them."""
    yield
    service.close_channels()


@pytest.fixture
def manual_clock() -> clock.ManualClock:
    manual = clock.ManualClock(T0)
    clock.set_clock(manual)
    return manual


@pytest.fixture
def pipeline() -> Iterator[Pipeline]:
    pipe = Pipeline()
    pipe.worker.start()
    yield pipe
    pipe.worker.stop()


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Change settings through the environment for one test; caches are rebuilt around it."""
    get_settings.cache_clear()
    service.channels.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()
    service.channels.cache_clear()


@pytest.fixture(scope="module")
def _twilio_server() -> Iterator[TwilioServer]:
    with TwilioServer() as server:
        yield server


@pytest.fixture
def twilio(settings_env: pytest.MonkeyPatch, _twilio_server: TwilioServer) -> TwilioServer:
    """The SMS channel configured and pointed at Twilio's local stand-in."""
    _twilio_server.reset()
    configure(settings_env, _twilio_server.settings_overrides())
    return _twilio_server


@pytest.fixture(scope="module")
def _servers() -> Iterator[Providers]:
    with (
        SendGridServer(api_key="SG.delivery-test") as sg,
        TwilioServer() as tw,
        MetaGraphServer() as meta,
    ):
        yield Providers(sg, tw, meta)


@pytest.fixture
def servers(_servers: Providers) -> Providers:
    """The three stand-ins, running, with no recorded requests; settings untouched."""
    for server in _servers.all():
        server.reset()
    return _servers


@pytest.fixture
def providers(settings_env: pytest.MonkeyPatch, servers: Providers) -> Providers:
    """Every channel configured with credentials and pointed at its stand-in."""
    configure(
        settings_env,
        {
            **servers.sendgrid.settings_overrides(),
            **servers.twilio.settings_overrides(),
            **servers.meta.settings_overrides(),
        },
    )
    return servers


@pytest.fixture
def no_credentials(settings_env: pytest.MonkeyPatch, servers: Providers) -> Providers:
    """Base URLs point at the live stand-ins, but no channel has credentials."""
    configure(
        settings_env,
        {
            **{field: None for field in PROVIDER_ENV},
            "sendgrid_base_url": servers.sendgrid.base_url,
            "twilio_base_url": servers.twilio.base_url,
            "meta_graph_url": servers.meta.base_url,
        },
    )
    return servers


@pytest.fixture
def idle_pipeline() -> Iterator[Pipeline]:
    """The queue worker, not started: the test decides what the queue holds when it starts."""
    pipe = Pipeline()
    yield pipe
    pipe.worker.stop()
