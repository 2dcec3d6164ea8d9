"""Delivery ids in ops paths are BIGINT: a larger number is refused as invalid (422), not
passed to the database, which cannot hold it (a 500 on both SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.helpers import bearer


@pytest.mark.parametrize(
    "method,template",
    [("GET", "/ops/deliveries/{}"), ("POST", "/ops/dead-letters/{}/replay")],
)
@pytest.mark.parametrize("delivery_id", [2**63, 2**64, 10**40, 0, -1])
def test_ids_outside_bigint_are_invalid(
    client: TestClient, admin: str, method: str, template: str, delivery_id: int
) -> None:
    response = client.request(method, template.format(delivery_id), headers=bearer())
    assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    "method,template",
    [("GET", "/ops/deliveries/{}"), ("POST", "/ops/dead-letters/{}/replay")],
)
def test_the_largest_bigint_is_looked_up(
    client: TestClient, admin: str, method: str, template: str
) -> None:
    response = client.request(method, template.format(2**63 - 1), headers=bearer())
    assert response.status_code == 404, response.text
