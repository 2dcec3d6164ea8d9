"""Journey definition tests are pure: parsing, CEL and templates need no database or queue.

The suite-wide autouse fixtures (schema migration, table cleaning) are replaced here by no-ops
so these tests stay fast and run without PostgreSQL or Redis.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from app.journeys import conditions, template_sandbox, templates


@pytest.fixture(scope="session", autouse=True)
def schema() -> None:
    """No database needed."""


@pytest.fixture(autouse=True)
def clean_state() -> Iterator[None]:
    """No database or broker state to reset."""
    yield


@pytest.fixture
def no_wall_clock_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Step and size budgets only: a test that counts steps must not depend on how loaded the
    machine is (the 5 s wall-clock limit is the last resort, tested on its own)."""
    for module, name in (
        (conditions, "CEL_LIMITS"),
        (templates, "RENDER_LIMITS"),
        (template_sandbox, "RENDER_LIMITS"),
    ):
        monkeypatch.setattr(module, name, replace(getattr(module, name), seconds=3600.0))
