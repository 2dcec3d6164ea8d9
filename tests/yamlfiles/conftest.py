"""Reading YAML files into models is pure: no database, no queue, so the suite-wide
migration and cleaning fixtures are replaced by no-ops and these tests stay fast."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def schema() -> None:
    """No database needed."""


@pytest.fixture(autouse=True)
def clean_state() -> Iterator[None]:
    """Nothing stored to reset."""
    yield
