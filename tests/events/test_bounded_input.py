"""Bounded input: the body limit enforced while reading, gzip inflated within it, and every
value that a database column, JSONB or a serializer cannot take refused at ingest with a 400
naming the field, on SQLite and PostgreSQL alike (never a 5xx that SDKs would resend forever).
"""

from __future__ import annotations

import asyncio
import gzip
import http.client
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.db import session_scope
from app.events.json_values import MAX_DEPTH
from app.events.schemas import MAX_BATCH_BYTES, MAX_EVENT_BYTES
from app.main import create_app
from app.profiles.models import Identity
from tests.events.conftest import stored
from tests.helpers import Pipeline, basic, event_count, gzipped, identify, serving, track

JSON = {"Content-Type": "application/json"}


def post_raw(client: TestClient, path: str, content: bytes, **headers: str) -> Any:
    return client.post(path, content=content, headers={**basic(), **JSON, **headers})


def refused(response: Any, status: int = 400) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    return str(body["message"])


# --------------------------------------------------------------------------- reading the body


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
    with serving(create_app()) as url:
        host, port = url.removeprefix("http://").split(":")
        yield host, int(port)


def test_a_declared_oversized_body_is_refused_before_it_is_sent(server: tuple[str, int]) -> None:
    """Only the headers go out: a server that waited for the body would never answer."""
    head = (
        "POST /v1/batch HTTP/1.1\r\nHost: carillon\r\nContent-Type: application/json\r\n"
        f"Authorization: {basic()['Authorization']}\r\n"
        f"Content-Length: {MAX_BATCH_BYTES + 1}\r\n\r\n"
    )
    with socket.create_connection(server, timeout=10) as sock:
        sock.sendall(head.encode())
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        assert answer.status == 413
        assert json.loads(answer.read())["message"] == (
            "body: larger than 500 KB, the limit for this call"
        )


def test_a_streamed_body_is_refused_as_soon_as_it_passes_the_limit() -> None:
    """Chunked, no Content-Length: the app stops reading past the limit instead of taking in
    the whole 100 MB the client offers (the review saw +1 GB of memory for 500 MB)."""
    chunk = b" " * 65536
    offered = 100 * 1024 * 1024
    consumed = 0
    at_answer: list[int] = []
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        nonlocal consumed
        consumed += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": consumed < offered}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])
            at_answer.append(consumed)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/batch",
        "raw_path": b"/v1/batch",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"carillon"),
            (b"content-type", b"application/json"),
            (b"authorization", basic()["Authorization"].encode()),
            (b"transfer-encoding", b"chunked"),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    asyncio.run(create_app()(scope, receive, send))
    assert statuses == [413]
    assert at_answer[0] <= MAX_BATCH_BYTES + len(chunk)


def test_a_gzip_bomb_is_refused_within_the_limit(client: TestClient) -> None:
    bomb = gzip.compress(b'{"batch": [' + b" " * (50 * 1024 * 1024) + b"]}")
    assert len(bomb) < 100 * 1024
    response = post_raw(client, "/v1/batch", bomb, **{"Content-Encoding": "gzip"})
    assert refused(response, 413) == "body: larger than 500 KB, the limit for this call"


def test_truncated_gzip_is_refused(client: TestClient) -> None:
    whole = gzipped(track("u1", "A"))
    # Without its CRC and length trailer the JSON inflates complete: only the stream's
    # missing end tells.
    response = post_raw(client, "/v1/track", whole[:-8], **{"Content-Encoding": "gzip"})
    assert "truncated gzip" in refused(response)
    response = post_raw(client, "/v1/track", whole[:-20], **{"Content-Encoding": "gzip"})
    assert refused(response).startswith("body: ")
    assert event_count() == 0


def test_concatenated_gzip_members_are_one_body(client: TestClient) -> None:
    text = json.dumps(track("u1", "A")).encode()
    two_members = gzip.compress(text[:10]) + gzip.compress(text[10:])
    response = post_raw(client, "/v1/track", two_members, **{"Content-Encoding": "gzip"})
    assert response.status_code == 200, response.text


def test_an_unsupported_content_encoding_is_refused(client: TestClient) -> None:
    body = json.dumps(track("u1", "A")).encode()
    response = post_raw(client, "/v1/track", body, **{"Content-Encoding": "br"})
    assert refused(response) == "Content-Encoding: 'br' is not supported (gzip or none)"


def test_sizes_count_utf8_bytes_not_escapes(client: TestClient) -> None:
    """18 KB of "é" is 18 KB, not the 54 KB of its \\u00e9 escapes."""
    text = "é" * 9000
    body = json.dumps(track("u1", "A", {"text": text}), ensure_ascii=False).encode()
    assert 18_000 < len(body) < MAX_EVENT_BYTES < len(json.dumps({"text": text}))
    assert post_raw(client, "/v1/track", body).status_code == 200
    batch = json.dumps({"batch": [track("u2", "A", {"text": text})]}, ensure_ascii=False)
    assert post_raw(client, "/v1/batch", batch.encode()).status_code == 200
    assert [e.payload["properties"]["text"] for e in stored()] == [text, text]


# --------------------------------------------------------------------------- JSON values


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def test_nesting_is_limited_and_named(client: TestClient) -> None:
    # `properties` is one level inside the event: MAX_DEPTH - 1 more objects fit under it.
    ok = track("u1", "A", nested(MAX_DEPTH - 1))
    assert client.post("/v1/track", json=ok, headers=basic()).status_code == 200
    deep = track("u1", "A", nested(300))
    message = refused(client.post("/v1/track", json=deep, headers=basic()))
    assert message == "properties" + ".a" * MAX_DEPTH + f": nested deeper than {MAX_DEPTH} levels"
    # Deeper than the JSON decoder recurses: refused whole, as the body.
    body = ('{"userId":"u1","event":"A","properties":' + '{"a":' * 5000 + "1" + "}" * 5001).encode()
    assert (
        refused(post_raw(client, "/v1/track", body))
        == f"body: nested deeper than {MAX_DEPTH} levels"
    )
    assert event_count() == 1


@pytest.mark.parametrize(
    "literal,reason",
    [
        ("1" * 4400, "integers must fit in 64 bits (-2^63 to 2^63-1)"),
        (str(2**63), "integers must fit in 64 bits (-2^63 to 2^63-1)"),
        (str(-(2**63) - 1), "integers must fit in 64 bits (-2^63 to 2^63-1)"),
        ("1e999", "1e999 is not a finite number"),
        ("-9.3e18", "-9.3e18 is beyond +/-2^63, the range of stored numbers"),
        ("NaN", "NaN is not a JSON number"),
        ("-Infinity", "-Infinity is not a JSON number"),
    ],
)
def test_numbers_that_cannot_be_stored_are_refused_and_named(
    client: TestClient, literal: str, reason: str
) -> None:
    event = f'{{"type":"track","userId":"u1","event":"A","properties":{{"n":[0,{literal}]}}}}'
    body = f'{{"batch":[{event}]}}'
    assert (
        refused(post_raw(client, "/v1/batch", body.encode()))
        == f"batch[0].properties.n[1]: {reason}"
    )
    assert event_count() == 0


def test_the_largest_integers_are_stored(client: TestClient, pipeline: Pipeline) -> None:
    numbers = {"low": -(2**63), "high": 2**63 - 1, "big": 9.2e18, "small": -1.5e-300}
    body = track("u1", "A", numbers)
    assert client.post("/v1/track", json=body, headers=basic()).status_code == 200
    pipeline.drain()
    [event] = stored()
    assert event.payload["properties"] == numbers
    assert event.processed_at is not None


NUL = "\\u0000"
SURROGATE = "\\ud800"


@pytest.mark.parametrize(
    "path,body,message",
    [
        (
            "/v1/track",
            f'{{"userId":"u1","event":"Cart{NUL}"}}',
            "event: contains a NUL character (\\u0000)",
        ),
        (
            "/v1/track",
            f'{{"userId":"u{SURROGATE}","event":"A"}}',
            "userId: contains a lone UTF-16 surrogate, which is not a character",
        ),
        (
            "/v1/track",
            f'{{"userId":"u1","event":"A","properties":{{"note":["ok","x{NUL}"]}}}}',
            "properties.note[1]: contains a NUL character (\\u0000)",
        ),
        (
            "/v1/track",
            f'{{"userId":"u1","event":"A","properties":{{"k{SURROGATE}":1}}}}',
            "properties: a key contains a lone UTF-16 surrogate, which is not a character",
        ),
        (
            "/v1/identify",
            f'{{"userId":"u1","traits":{{"name":"Ada{SURROGATE}"}}}}',
            "traits.name: contains a lone UTF-16 surrogate, which is not a character",
        ),
        (
            "/v1/batch",
            f'{{"batch":[{{"type":"page","anonymousId":"a","name":"Home"}}],"context":{{"ip":"{NUL}"}}}}',
            "batch[0].context.ip: contains a NUL character (\\u0000)",
        ),
    ],
)
def test_nul_and_lone_surrogates_are_refused_and_named(
    client: TestClient, path: str, body: str, message: str
) -> None:
    assert refused(post_raw(client, path, body.encode())) == message
    assert event_count() == 0


# --------------------------------------------------------------------------- database bounds


LONG = "x" * 256


@pytest.mark.parametrize(
    "path,body,message",
    [
        (
            "/v1/track",
            {"userId": LONG, "event": "A"},
            "userId: String should have at most 255 characters",
        ),
        (
            "/v1/track",
            {"anonymousId": LONG, "event": "A"},
            "anonymousId: String should have at most 255 characters",
        ),
        (
            "/v1/track",
            {"userId": "u1", "event": LONG},
            "event: String should have at most 255 characters",
        ),
        (
            "/v1/page",
            {"userId": "u1", "name": LONG},
            "name: String should have at most 255 characters",
        ),
        (
            "/v1/track",
            {"userId": "u1", "event": "A", "messageId": LONG},
            "messageId: String should have at most 255 characters",
        ),
        (
            "/v1/alias",
            {"userId": "u1", "previousId": LONG},
            "previousId: String should have at most 255 characters",
        ),
        (
            "/v1/identify",
            identify("u1", {"email": "a" * 290 + "@example.com"}),
            "traits.email: longer than 255 characters",
        ),
        (
            "/v1/identify",
            identify("u1", {"phone": "+33" + "6" * 253}),
            "traits.phone: longer than 255 characters",
        ),
        (
            "/v1/identify",
            identify("u1", {"email": {"work": "a@example.com"}}),
            "traits.email: expected a string",
        ),
        (
            "/v1/identify",
            identify("u1", {"phone": True}),
            "traits.phone: expected a string or an integer",
        ),
        (
            "/v1/identify",
            identify("u1", {LONG: 1}),
            f'traits["{"x" * 64}..."]: trait names are limited to 255 characters',
        ),
    ],
)
def test_strings_longer_than_their_column_are_refused_and_named(
    client: TestClient, path: str, body: dict[str, Any], message: str
) -> None:
    assert refused(client.post(path, json=body, headers=basic())) == message
    batch = {"batch": [track("u1", "ok"), {**body, "type": path.removeprefix("/v1/")}]}
    assert refused(client.post("/v1/batch", json=batch, headers=basic())) == f"batch[1].{message}"
    assert event_count() == 0


def test_strings_as_long_as_their_column_are_stored_and_routed(
    client: TestClient, pipeline: Pipeline
) -> None:
    user, email, trait = "u" * 255, "a" * 243 + "@example.com", "t" * 255
    body = identify(user, {"email": email, "phone": 33612345678, trait: 1}, messageId="m" * 255)
    assert client.post("/v1/identify", json=body, headers=basic()).status_code == 200
    pipeline.drain()
    [event] = stored()
    assert event.processed_at is not None
    with session_scope() as session:
        assert session.get(Identity, ("email", email)) is not None
        assert session.get(Identity, ("phone", "33612345678")) is not None
