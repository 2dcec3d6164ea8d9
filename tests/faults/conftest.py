"""Fixtures of the fault tests: the in-process delivery fixtures (for the ambiguous-window
tests), and one private PostgreSQL and Redis for the process-level fault matrix."""

from collections.abc import Iterator

import pytest

from tests.faults.services import PrivatePostgres, PrivateRedis
from tests.test_delivery import _servers, idle_pipeline, providers, servers  # noqa: F401


@pytest.fixture(scope="session")
def private_postgres() -> Iterator[PrivatePostgres]:
    postgres = PrivatePostgres()
    yield postgres
    postgres.close()


@pytest.fixture(scope="session")
def private_redis() -> Iterator[PrivateRedis]:
    redis = PrivateRedis()
    yield redis
    redis.stop()
