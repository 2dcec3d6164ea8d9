"""Test setup: the real database and broker named by the environment.

`make test` runs the suite on the embedded default (a SQLite file, the in-process queue);
`.ci/run` runs it again with CARILLON_DATABASE_URL=postgresql+psycopg://… and
CARILLON_REDIS_URL=redis://…. Nothing is skipped in either pass.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.settings import PROVIDER_CREDENTIAL_VARIABLES

REPO = Path(__file__).resolve().parent.parent
if "CARILLON_DATABASE_URL" not in os.environ:
    _tmp = tempfile.mkdtemp(prefix="carillon-test-")
    os.environ["CARILLON_DATABASE_URL"] = f"sqlite:///{_tmp}/test.db"
os.environ.setdefault("CARILLON_JOURNEYS_DIR", str(REPO / "journeys"))
os.environ.setdefault("CARILLON_WRITE_KEYS", "test-key,shop=shop-key")
# Production roles need the one signing secret; tests of the embedded default unset it.
os.environ.setdefault("CARILLON_SECRET_KEY", "test-secret-key-0123456789abcdef")
# No quiet hours unless a test sets them: the default (SMS 21:00-08:00) would make every test on
# the real clock depend on the hour it runs at.
os.environ.setdefault("CARILLON_QUIET_HOURS", "")
for _provider_var in PROVIDER_CREDENTIAL_VARIABLES:
    os.environ.pop(_provider_var, None)

import dramatiq  # noqa: E402
import pytest  # noqa: E402
from dramatiq.brokers.stub import StubBroker  # noqa: E402
from sqlalchemy import text  # noqa: E402

from app import clock  # noqa: E402
from app.db import get_engine  # noqa: E402
from app.journeys import catalog  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from app.models import reset_all  # noqa: E402
from app.ops import throttle  # noqa: E402
from app.settings import get_settings  # noqa: E402
from app.tasks import broker  # noqa: E402
from channels import registry  # noqa: E402

QUEUES = ("events", *registry.names())
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="session", autouse=True)
def schema() -> None:
    engine = get_engine()
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    upgrade()


@pytest.fixture(autouse=True)
def clean_state() -> Iterator[None]:
    reset_all()
    throttle.forget()
    catalog.forget_parsed()
    broker.flush_all()
    yield
    clock.set_clock(clock.SystemClock())


@pytest.fixture
def manual_clock() -> clock.ManualClock:
    manual = clock.ManualClock(T0)
    clock.set_clock(manual)
    return manual


class Pipeline:
    """The queue worker, run in-process for a test, and a way to wait until it is idle."""

    def __init__(self) -> None:
        self.worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)

    def drain(self) -> None:
        # The in-process broker re-raises a job's error; on Redis a failing job is retried
        # until the timeout fails the test.
        wait: dict[str, Any] = (
            {"fail_fast": True} if isinstance(broker, StubBroker) else {"timeout": 60_000}
        )
        for _ in range(2):  # events enqueue deliveries: two passes reach the end of the chain
            for queue in QUEUES:
                broker.join(queue, **wait)
            self.worker.join()


@pytest.fixture
def pipeline() -> Iterator[Pipeline]:
    pipe = Pipeline()
    pipe.worker.start()
    yield pipe
    pipe.worker.stop()


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Change settings through the environment for one test; caches are rebuilt around it."""
    from app.delivery import service

    get_settings.cache_clear()
    service.channels.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()
    service.channels.cache_clear()
