"""The OpenAPI document describes what every /v1/* operation takes and answers, so client
generators and fuzzers can use it; and the bodies it describes are the ones the server takes."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient

from tests.helpers import basic, identify, track

KINDS = ("track", "identify", "page", "screen", "group", "alias")
VALID = {
    "track": track("u1", "Cart Abandoned", {"total": 42.5}),
    "identify": identify("u1", {"email": "ada@example.com"}),
    "page": {"anonymousId": "a1", "name": "Home", "properties": {"url": "/"}},
    "screen": {"anonymousId": "a1", "name": "Cart"},
    "group": {"userId": "u1", "groupId": "g1", "traits": {"name": "Initech"}},
    "alias": {"userId": "u1", "previousId": "a1"},
}
INVALID = {
    "track": {"userId": "u1"},
    "identify": {"traits": {"plan": "pro"}},
    "page": {"userId": "u1", "name": 5},
    "screen": {"anonymousId": "", "name": "Cart"},
    "group": {"type": "track", "userId": "u1"},
    "alias": {"userId": "u1"},
}


@pytest.fixture
def document(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return dict(response.json())


def body_schema(document: dict[str, Any], path: str) -> dict[str, Any]:
    operation = document["paths"][path]["post"]
    assert operation["requestBody"]["required"] is True
    return dict(operation["requestBody"]["content"]["application/json"]["schema"])


def check(schema: dict[str, Any], instance: Any) -> bool:
    try:
        jsonschema.validate(instance, schema, format_checker=jsonschema.FormatChecker())
    except jsonschema.ValidationError:
        return False
    return True


@pytest.mark.parametrize("kind", [*KINDS, "batch"])
def test_every_tracking_operation_documents_its_body_answers_and_key(
    document: dict[str, Any], kind: str
) -> None:
    operation = document["paths"][f"/v1/{kind}"]["post"]
    assert "application/json" in operation["requestBody"]["content"]
    failure = {"$ref": "#/components/schemas/Failure"}
    for status in ("400", "401", "413", "503"):
        assert operation["responses"][status]["content"]["application/json"]["schema"] == failure
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Accepted"
    }
    assert operation["security"] == [{"writeKey": []}]
    assert document["components"]["securitySchemes"]["writeKey"] == {
        "type": "http",
        "scheme": "basic",
        "description": "The write key as user name, password empty.",
    }
    failure_schema = document["components"]["schemas"]["Failure"]
    assert set(failure_schema["required"]) == {"code", "message"}


@pytest.mark.parametrize("kind", KINDS)
def test_the_documented_bodies_are_the_accepted_ones(
    document: dict[str, Any], client: TestClient, kind: str
) -> None:
    schema = body_schema(document, f"/v1/{kind}")
    assert check(schema, VALID[kind])
    assert client.post(f"/v1/{kind}", json=VALID[kind], headers=basic()).status_code == 200
    assert not check(schema, INVALID[kind])
    assert client.post(f"/v1/{kind}", json=INVALID[kind], headers=basic()).status_code == 400


def test_the_batch_body_takes_every_call_type(document: dict[str, Any], client: TestClient) -> None:
    schema = body_schema(document, "/v1/batch")
    batch = {
        "batch": [{**VALID[kind], "type": kind} for kind in KINDS],
        "sentAt": "2026-11-02T09:00:00Z",
    }
    assert check(schema, batch)
    assert client.post("/v1/batch", json=batch, headers=basic()).status_code == 200
    # In a batch each event says its type.
    assert not check(schema, {"batch": [VALID["alias"]]})
    assert not check(schema, {"batch": []})
