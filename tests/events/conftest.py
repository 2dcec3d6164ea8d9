"""Ingest tests: the API in-process, and what landed in the `events` table."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.db import session_scope
from app.events.models import Event
from app.main import create_app


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app()) as test_client:
        yield test_client


def stored() -> list[Event]:
    with session_scope() as session:
        return list(session.scalars(select(Event).order_by(Event.id)))
