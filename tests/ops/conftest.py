"""Ops tests: an admin token set through the environment, and an app to call."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.helpers import TOKEN


@pytest.fixture
def admin(settings_env: pytest.MonkeyPatch) -> str:
    """CARILLON_ADMIN_TOKEN set for this test."""
    settings_env.setenv("CARILLON_ADMIN_TOKEN", TOKEN)
    return TOKEN


@pytest.fixture
def no_admin(settings_env: pytest.MonkeyPatch) -> None:
    """CARILLON_ADMIN_TOKEN unset for this test."""
    settings_env.delenv("CARILLON_ADMIN_TOKEN", raising=False)


@pytest.fixture
def client() -> Iterator[TestClient]:
    """The API without its lifespan: journeys are synced by each test that needs them."""
    yield TestClient(create_app())
