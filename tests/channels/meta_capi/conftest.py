"""Conversions API tests: the adapter against the Graph stand-in, and journeys routed through
the real pipeline, so the database is back (tests/channels/conftest.py turns it off for the
adapter-only tests beside these)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.channels.meta_capi.graph_events import MetaEventsServer
from tests.helpers import clean_state as clean_state  # the database fixtures
from tests.helpers import schema as schema


@pytest.fixture(scope="session")
def _capi() -> Iterator[MetaEventsServer]:
    with MetaEventsServer() as server:
        yield server


@pytest.fixture
def capi(_capi: MetaEventsServer) -> MetaEventsServer:
    _capi.reset()
    return _capi
