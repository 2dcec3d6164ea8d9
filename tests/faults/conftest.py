"""Fixtures of the fault tests: one private PostgreSQL and Redis for the process-level fault
matrix (the in-process delivery fixtures of the ambiguous-window tests are the suite's own)."""

from collections.abc import Iterator

import pytest

from tests.faults.services import PrivatePostgres, PrivateRedis


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
