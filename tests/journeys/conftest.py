"""Journey definition tests are pure: parsing, CEL and templates need no database or queue.

The suite-wide autouse fixtures (schema migration, table cleaning) are replaced here by no-ops
so these tests stay fast and run without PostgreSQL or Redis.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def schema() -> None:
    """No database needed."""


@pytest.fixture(autouse=True)
def clean_state() -> Iterator[None]:
    """No database or broker state to reset."""
    yield
