"""Event times: client clock skew corrected as Segment does, far-future times clamped to the
arrival, absurd past ones refused, and no datetime arithmetic on the way can overflow."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from app.clock import ManualClock
from app.events.event_time import FUTURE_TOLERANCE
from tests.events.conftest import stored
from tests.helpers import T0, basic, event_count, track


def iso(at: datetime) -> str:
    return at.isoformat()


def test_sent_at_corrects_a_clock_that_is_a_day_ahead(
    client: TestClient, manual_clock: ManualClock
) -> None:
    ahead = timedelta(days=1)
    body = track("u1", "A", timestamp=iso(T0 + ahead - timedelta(seconds=50)))
    body["sentAt"] = iso(T0 + ahead)
    assert client.post("/v1/track", json=body, headers=basic()).status_code == 200
    [event] = stored()
    assert event.timestamp == T0 - timedelta(seconds=50)
    # The client's own values stay in the payload, next to the corrected time.
    assert datetime.fromisoformat(event.payload["originalTimestamp"]) == T0 + ahead - timedelta(
        seconds=50
    )
    assert datetime.fromisoformat(event.payload["sentAt"]) == T0 + ahead
    assert datetime.fromisoformat(event.payload["timestamp"]) == event.timestamp
    assert datetime.fromisoformat(event.payload["receivedAt"]) == T0


def test_a_batch_level_sent_at_corrects_every_event_without_its_own(
    client: TestClient, manual_clock: ManualClock
) -> None:
    behind = -timedelta(hours=3)
    own = {**track("u1", "B", timestamp=iso(T0 - timedelta(minutes=1))), "sentAt": iso(T0)}
    body = {
        "batch": [track("u1", "A", timestamp=iso(T0 + behind - timedelta(minutes=2))), own],
        "sentAt": iso(T0 + behind),
    }
    assert client.post("/v1/batch", json=body, headers=basic()).status_code == 200
    assert [e.timestamp for e in stored()] == [
        T0 - timedelta(minutes=2),
        T0 - timedelta(minutes=1),
    ]


@pytest.mark.parametrize(
    "timestamp",
    [
        "9999-12-31T23:59:59Z",
        # Past year 9999 once in UTC: taken as the latest time there is, not an OverflowError.
        "9999-12-31T23:59:59-12:00",
        iso(T0 + FUTURE_TOLERANCE + timedelta(seconds=1)),
    ],
)
def test_a_time_beyond_the_tolerance_is_clamped_to_the_arrival(
    client: TestClient, manual_clock: ManualClock, timestamp: str
) -> None:
    body = track("u1", "A", timestamp=timestamp)
    assert client.post("/v1/track", json=body, headers=basic()).status_code == 200
    [event] = stored()
    assert event.timestamp == T0
    assert datetime.fromisoformat(event.payload["originalTimestamp"]) == datetime.fromisoformat(
        timestamp
    )


def test_a_clock_a_little_ahead_keeps_its_times_and_their_order(
    client: TestClient, manual_clock: ManualClock
) -> None:
    first, second = T0 + FUTURE_TOLERANCE - timedelta(seconds=2), T0 + FUTURE_TOLERANCE
    body = {
        "batch": [track("u1", "A", timestamp=iso(first)), track("u1", "B", timestamp=iso(second))]
    }
    assert client.post("/v1/batch", json=body, headers=basic()).status_code == 200
    assert [e.timestamp for e in stored()] == [first, second]


@pytest.mark.parametrize(
    "field,value",
    [
        # Before year 1 once in UTC: the earliest time there is, not an OverflowError.
        ("timestamp", "0001-01-01T00:00:00+14:00"),
        ("timestamp", "1969-12-31T23:59:59Z"),
        ("originalTimestamp", "0001-01-01T00:00:00Z"),
        ("sentAt", "1900-01-01T00:00:00Z"),
    ],
)
def test_a_time_before_1970_is_refused_naming_the_field(
    client: TestClient, field: str, value: str
) -> None:
    body = {**track("u1", "A"), field: value}
    for path, sent in (("/v1/track", body), ("/v1/batch", {"batch": [track("u1", "ok"), body]})):
        response = client.post(path, json=sent, headers=basic())
        assert response.status_code == 400, response.text
        prefix = "batch[1]." if path == "/v1/batch" else ""
        assert response.json()["message"] == (
            f"{prefix}{field}: {datetime.fromisoformat(value).isoformat()} is before "
            "1970-01-01T00:00:00+00:00, the earliest event time"
        )
    assert event_count() == 0


def test_a_sent_at_that_moves_the_event_before_1970_is_refused(client: TestClient) -> None:
    body = {**track("u1", "A", timestamp="1971-01-01T00:00:00Z"), "sentAt": "9999-01-01T00:00:00Z"}
    response = client.post("/v1/track", json=body, headers=basic())
    assert response.status_code == 400
    assert response.json()["message"].startswith("sentAt: moves the event time before 1970")
    assert event_count() == 0
