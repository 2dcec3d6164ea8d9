"""The Segment-compatible tracking API: what is stored, what is refused, and why."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from tests.events.conftest import stored
from tests.helpers import basic, event_count, gzipped, identify, track


def test_track_is_stored_with_its_payload(client: TestClient) -> None:
    body = track("u1", "Cart Abandoned", {"total": 42.5}, messageId="m-1")
    response = client.post("/v1/track", json=body, headers=basic())
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True}
    [event] = stored()
    assert (event.type, event.name, event.user_id, event.message_id) == (
        "track",
        "Cart Abandoned",
        "u1",
        "m-1",
    )
    assert event.payload["properties"] == {"total": 42.5}
    assert event.timestamp.isoformat() == "2026-11-02T09:00:00+00:00"
    assert event.source == "default"


@pytest.mark.parametrize(
    "kind,body",
    [
        ("identify", identify("u1", {"email": "a@example.com"})),
        ("page", {"anonymousId": "a1", "name": "Home", "properties": {"url": "/"}}),
        ("screen", {"anonymousId": "a1", "name": "Cart"}),
        ("group", {"userId": "u1", "groupId": "g1"}),
        ("alias", {"userId": "u1", "previousId": "a1"}),
    ],
)
def test_every_call_type_is_stored(client: TestClient, kind: str, body: dict) -> None:
    response = client.post(f"/v1/{kind}", json=body, headers=basic())
    assert response.status_code == 200, response.text
    assert [e.type for e in stored()] == [kind]


def test_write_key_in_body_and_labelled_source(client: TestClient) -> None:
    body = {**track("u1", "Viewed"), "writeKey": "shop-key"}
    assert client.post("/v1/track", json=body).status_code == 200
    [event] = stored()
    assert event.source == "shop"
    assert "writeKey" not in event.payload


def test_batch_gzip_and_batch_context(client: TestClient) -> None:
    body = {
        "batch": [track("u1", "A"), identify("u1", {"plan": "pro"})],
        "context": {"library": {"name": "analytics-python"}},
    }
    response = client.post(
        "/v1/batch",
        content=gzipped(body),
        headers={**basic(), "Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    events = stored()
    assert [e.type for e in events] == ["track", "identify"]
    assert all(e.payload["context"]["library"]["name"] == "analytics-python" for e in events)


def test_repeated_message_id_is_acknowledged_and_stored_once(client: TestClient) -> None:
    body = track("u1", "Order Completed", messageId="same")
    for _ in range(3):
        assert client.post("/v1/track", json=body, headers=basic()).status_code == 200
    batch = {"batch": [body, track("u1", "Other", messageId="other"), body]}
    assert client.post("/v1/batch", json=batch, headers=basic()).status_code == 200
    assert sorted(e.message_id for e in stored()) == ["other", "same"]


def test_same_message_id_from_two_sources_is_two_events(client: TestClient) -> None:
    body = track("u1", "A", messageId="m")
    assert client.post("/v1/track", json=body, headers=basic("test-key")).status_code == 200
    assert client.post("/v1/track", json=body, headers=basic("shop-key")).status_code == 200
    assert event_count() == 2


def test_missing_message_id_gets_one(client: TestClient) -> None:
    assert client.post("/v1/track", json=track("u1", "A"), headers=basic()).status_code == 200
    [event] = stored()
    assert event.message_id.startswith("carillon-")


@pytest.mark.parametrize(
    "headers,body,message",
    [
        ({}, track("u1", "A"), "missing write key"),
        (basic("nope"), track("u1", "A"), "unknown write key"),
        ({"Authorization": "Basic !!!"}, track("u1", "A"), "malformed basic credentials"),
        ({}, {**track("u1", "A"), "writeKey": "nope"}, "unknown write key"),
    ],
)
def test_bad_write_key_is_401_and_stores_nothing(
    client: TestClient, headers: dict, body: dict, message: str
) -> None:
    response = client.post("/v1/track", json=body, headers=headers)
    assert response.status_code == 401
    assert message in response.json()["message"]
    assert event_count() == 0


@pytest.mark.parametrize(
    "path,body,field",
    [
        ("/v1/track", {"type": "track", "event": "A"}, "userId or anonymousId is required"),
        ("/v1/track", {"userId": "u1"}, "event is required"),
        ("/v1/track", {"userId": "u1", "event": "A", "properties": [1, 2]}, "properties"),
        ("/v1/track", {"userId": "u1", "event": 5}, "event"),
        ("/v1/track", {"userId": "u1", "event": "A", "timestamp": "yesterday"}, "timestamp"),
        (
            "/v1/track",
            {"userId": "u1", "event": "A", "timestamp": "2026-01-01T10:00:00"},
            "time zone",
        ),
        ("/v1/identify", {"userId": {"id": 1}, "traits": {}}, "userId"),
        ("/v1/identify", {"userId": "u1", "traits": "vip"}, "traits"),
        ("/v1/alias", {"userId": "u1"}, "previousId"),
        ("/v1/track", {"type": "identify", "userId": "u1"}, "type"),
        ("/v1/batch", {"batch": "nope"}, "batch"),
        ("/v1/batch", {"batch": []}, "empty"),
        ("/v1/batch", {"batch": [track("u1", "A"), {"type": "track", "userId": "u2"}]}, "batch[1]"),
        ("/v1/batch", {"batch": [{"type": "launch", "userId": "u2"}]}, "batch[0].type"),
    ],
)
def test_invalid_events_are_400_naming_the_field_and_store_nothing(
    client: TestClient, path: str, body: dict, field: str
) -> None:
    response = client.post(path, json=body, headers=basic())
    assert response.status_code == 400, response.text
    assert field in response.json()["message"]
    assert response.json()["success"] is False
    assert event_count() == 0


@pytest.mark.parametrize(
    "content,headers,message",
    [
        (b"{not json", {}, "malformed JSON"),
        (b"\xff\xfe", {}, "malformed JSON"),
        (b"not gzip at all", {"Content-Encoding": "gzip"}, "invalid gzip"),
    ],
)
def test_unreadable_bodies_are_400(
    client: TestClient, content: bytes, headers: dict, message: str
) -> None:
    response = client.post("/v1/track", content=content, headers={**basic(), **headers})
    assert response.status_code == 400
    assert message in response.json()["message"]
    assert event_count() == 0


def test_event_over_32kb_is_refused(client: TestClient) -> None:
    body = track("u1", "A", {"blob": "x" * 33_000})
    response = client.post("/v1/track", json=body, headers=basic())
    assert response.status_code == 413
    assert "32 KB" in response.json()["message"]
    in_batch = {"batch": [track("u1", "ok"), body]}
    response = client.post("/v1/batch", json=in_batch, headers=basic())
    assert response.status_code == 400
    assert response.json()["message"].startswith("batch[1]")
    assert "32 KB" in response.json()["message"]
    assert event_count() == 0


def test_batch_over_500kb_is_refused_even_gzipped(client: TestClient) -> None:
    events = [track(f"u{i}", "A", {"blob": "y" * 20_000}) for i in range(30)]
    body = {"batch": events}
    assert len(json.dumps(body)) > 500 * 1024
    response = client.post(
        "/v1/batch", content=gzipped(body), headers={**basic(), "Content-Encoding": "gzip"}
    )
    assert response.status_code == 413
    assert response.json() == {
        "success": False,
        "code": "payload_too_large",
        "message": "body: larger than 500 KB, the limit for this call",
    }
    assert event_count() == 0
