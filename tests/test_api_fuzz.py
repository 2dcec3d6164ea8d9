"""Property-based fuzzing of every operation in the app's OpenAPI document: no input, valid or
not, may get a 5xx (Segment SDKs resend a batch on a 5xx forever).

Schemathesis generates requests from the document (positive: what it describes; negative:
what it does not; and the boundary values of its coverage phase) and sends them to the app
in-process, authenticated as each operation needs. A fixed seed and a bounded number of
examples make it a regular test of about a minute, run in both passes: SQLite here,
PostgreSQL and Redis when CARILLON_DATABASE_URL and CARILLON_REDIS_URL point there.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from app.main import create_app
from tests.helpers import basic

ADMIN_TOKEN = "fuzz-admin-token-0123456789"
SEND_KEY = "fuzz-send-key-0123456789abcdef"

APP = create_app()
# The document is the one /openapi.json serves; the app's start-up (which syncs the journeys
# into the database) waits for the first call, once the test session has migrated it.
schema = schemathesis.openapi.from_dict(APP.openapi())
schema.app = APP
# A fixed seed: every run sends the same requests, so a failure reproduces.
schema.config.seed = 20261202


def _credentials(path: str) -> dict[str, str]:
    if path == "/v1/messages":
        return {"Authorization": f"Bearer {SEND_KEY}"}
    if path.startswith("/v1/") and not path.startswith("/v1/profiles/"):
        return basic()
    if path.startswith(("/ops/", "/v1/profiles/")) or path == "/metrics":
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    return {}


@pytest.fixture
def admin(settings_env: pytest.MonkeyPatch) -> Iterator[None]:
    settings_env.setenv("CARILLON_ADMIN_TOKEN", ADMIN_TOKEN)
    settings_env.setenv("CARILLON_SEND_KEYS", SEND_KEY)
    yield


@schema.parametrize()
@settings(
    max_examples=30,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_input_gets_a_server_error(case: schemathesis.Case, admin: None) -> None:
    response = case.call(headers=_credentials(case.path))
    assert response.status_code < 500, (
        f"{response.status_code} for {case.as_curl_command()}\n{response.text[:2000]}"
    )
