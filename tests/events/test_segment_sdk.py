"""The official Segment Python SDK, unchanged, against a real Carillon HTTP server.

The SDK only ever posts to `/v1/batch` (basic auth with the write key, `writeKey` and `sentAt`
in the body, `"anonymousId": null` when there is none, gzip on request), retries on its own
schedule and reports failures through `on_error`. Each test sends through it over a socket to
uvicorn serving `create_app()` and looks at what landed in the `events` table.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
import segment.analytics.request as segment_request
from segment.analytics import Client
from segment.analytics.request import APIError
from sqlalchemy import select

from app.db import session_scope
from app.events.models import Event
from app.main import create_app
from tests.helpers import WRITE_KEY, event_count, serving

T = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def carillon_url() -> Iterator[str]:
    """`carillon api` in a thread: uvicorn serving `create_app()` on a free port."""
    with serving(create_app()) as url:
        yield url


@dataclass(frozen=True)
class Sent:
    """One HTTP request the SDK made, as seen on its side of the socket."""

    url: str
    status: int
    content_encoding: str | None


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[Sent]:
    """Every request the SDK makes, recorded by a `requests` response hook on its session."""
    records: list[Sent] = []

    def record(response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
        request = response.request
        encoding = request.headers.get("Content-Encoding")
        if isinstance(encoding, bytes):
            encoding = encoding.decode("latin-1")
        records.append(Sent(str(request.url), response.status_code, encoding))

    monkeypatch.setattr(segment_request._session, "hooks", {"response": [record]})
    return records


def stored() -> list[Event]:
    with session_scope() as session:
        return list(session.scalars(select(Event).order_by(Event.id)))


class Errors:
    """The SDK's `on_error(exception, batch)` callback, remembering what it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[Exception, list[dict[str, Any]]]] = []

    def __call__(self, error: Exception, batch: list[dict[str, Any]]) -> None:
        self.calls.append((error, batch))


@contextmanager
def background_client(
    url: str, write_key: str, *, gzip: bool, on_error: Errors
) -> Iterator[Client]:
    """The SDK's default mode: calls are queued and a consumer thread uploads them in batches."""
    client = Client(
        write_key,
        host=url,
        gzip=gzip,
        on_error=on_error,
        upload_interval=0.05,
        max_retries=0,  # a failure is reported at once instead of after minutes of back-off
    )
    try:
        yield client
    finally:
        client.join()  # stop the consumer thread


def test_sync_calls_of_every_kind_are_stored(carillon_url: str, sent: list[Sent]) -> None:
    client = Client(WRITE_KEY, host=carillon_url, sync_mode=True)
    client.identify(
        "u-42", {"email": "ada@example.com", "first_name": "Ada"}, timestamp=T, message_id="id-1"
    )
    client.track(
        "u-42",
        "Cart Abandoned",
        {"total": 42.5, "cart_url": "https://shop.example/cart/9"},
        timestamp=T,
        message_id="tr-1",
    )
    client.page("u-42", name="Checkout", properties={"url": "/checkout"}, message_id="pg-1")
    _ok, alias = client.alias("anon-7", "u-42")  # the SDK makes up the messageId

    assert [(r.url, r.status) for r in sent] == [(f"{carillon_url}/v1/batch", 200)] * 4
    events = stored()
    assert [(e.type, e.name, e.user_id, e.message_id) for e in events] == [
        ("identify", None, "u-42", "id-1"),
        ("track", "Cart Abandoned", "u-42", "tr-1"),
        ("page", "Checkout", "u-42", "pg-1"),
        ("alias", None, "u-42", alias["messageId"]),
    ]
    identify, track, page, alias_event = events
    assert identify.payload["traits"] == {"email": "ada@example.com", "first_name": "Ada"}
    assert track.payload["properties"] == {"total": 42.5, "cart_url": "https://shop.example/cart/9"}
    assert page.payload["properties"] == {"url": "/checkout"}
    assert alias_event.payload["previousId"] == "anon-7"
    for event in (identify, track):
        # The SDK's own time is kept; the event time is corrected for its clock's skew, as
        # Segment does, by the batch-level sentAt the SDK adds when it posts.
        payload = event.payload
        assert datetime.fromisoformat(payload["originalTimestamp"]) == T
        skew = datetime.fromisoformat(payload["receivedAt"]) - datetime.fromisoformat(
            payload["sentAt"]
        )
        assert event.timestamp == T + skew
    for event in events:
        assert event.source == "default"
        # The SDK sends "anonymousId": null; that is no anonymous id, not the string "None".
        assert event.anonymous_id is None
        assert "anonymousId" not in event.payload
        assert event.payload["context"]["library"]["name"] == "analytics-python"


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
def test_batched_uploads_are_stored(carillon_url: str, sent: list[Sent], gzip: bool) -> None:
    errors = Errors()
    with background_client(carillon_url, "shop-key", gzip=gzip, on_error=errors) as client:
        for n in range(5):
            client.track(f"u-{n}", "Product Viewed", {"sku": f"SKU-{n}"}, message_id=f"pv-{n}")
        client.identify(anonymous_id="anon-1", traits={"plan": "free"}, message_id="anon-id")
        client.flush()

    assert errors.calls == []
    assert sent, "the SDK made no request"
    assert {r.url for r in sent} == {f"{carillon_url}/v1/batch"}
    assert {r.status for r in sent} == {200}
    assert {r.content_encoding for r in sent} == {"gzip" if gzip else None}
    events = stored()
    assert sorted((e.message_id, e.type, e.name, e.user_id, e.anonymous_id) for e in events) == [
        ("anon-id", "identify", None, None, "anon-1"),
        *[(f"pv-{n}", "track", "Product Viewed", f"u-{n}", None) for n in range(5)],
    ]
    assert {e.source for e in events} == {"shop"}
    by_id = {e.message_id: e for e in events}
    assert by_id["pv-3"].payload["properties"] == {"sku": "SKU-3"}
    assert by_id["anon-id"].payload["traits"] == {"plan": "free"}


def test_a_message_resent_by_the_sdk_is_stored_once(carillon_url: str) -> None:
    client = Client(WRITE_KEY, host=carillon_url, sync_mode=True, gzip=True)
    for _ in range(3):
        client.track("u-1", "Order Completed", {"total": 80}, message_id="order-1")
    assert [(e.name, e.message_id) for e in stored()] == [("Order Completed", "order-1")]


def test_bad_write_key_is_reported_through_on_error_and_stores_nothing(
    carillon_url: str, sent: list[Sent]
) -> None:
    errors = Errors()
    with background_client(carillon_url, "not-a-key", gzip=True, on_error=errors) as client:
        client.track("u-1", "Cart Abandoned", {"total": 30}, message_id="bad-1")
        client.identify("u-1", {"email": "a@example.com"}, message_id="bad-2")
        client.flush()

    assert sent and {r.status for r in sent} == {401}
    assert errors.calls, "on_error was not called"
    failed: list[str] = []
    for error, batch in errors.calls:
        assert isinstance(error, APIError)
        assert error.status == 401
        assert "unknown write key" in str(error.message)
        failed += [message["messageId"] for message in batch]
    assert sorted(failed) == ["bad-1", "bad-2"]
    assert event_count() == 0


def test_bad_write_key_raises_in_sync_mode_and_stores_nothing(carillon_url: str) -> None:
    client = Client("not-a-key", host=carillon_url, sync_mode=True)
    with pytest.raises(APIError) as raised:
        client.track("u-1", "Cart Abandoned", {"total": 30})
    assert raised.value.status == 401
    assert "unknown write key" in str(raised.value.message)
    assert event_count() == 0
