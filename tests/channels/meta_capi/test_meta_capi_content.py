"""What a step's content becomes once rendered: defaults filled in, every value checked."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.clock import ManualClock
from channels.base import ContentRefused
from channels.meta_capi.content import finish
from tests.helpers import T0

T0_SECONDS = str(int(T0.timestamp()))


def test_defaults_website_and_the_moment_the_step_ran(manual_clock: ManualClock) -> None:
    assert finish({"event_name": "Lead"}) == {
        "event_name": "Lead",
        "action_source": "website",
        "event_time": T0_SECONDS,
    }


def test_blank_values_are_left_out(manual_clock: ManualClock) -> None:
    """A template that renders nothing (`| default('')`) means the key was not given."""
    finished = finish({"event_name": " Lead ", "event_id": "", "pixel_id": "  ", "value": ""})
    assert finished == {"event_name": "Lead", "action_source": "website", "event_time": T0_SECONDS}


def test_finished_content_finishes_to_itself(manual_clock: ManualClock) -> None:
    """The adapter finishes what it is handed again: a row finished at render time, then
    retried a day later, keeps its event time."""
    first = finish({"event_name": "Purchase", "value": "42.50", "currency": "eur"})
    manual_clock.advance(datetime(2026, 11, 3, tzinfo=UTC) - T0)
    assert (
        finish(dict(first))
        == first
        == {
            "event_name": "Purchase",
            "value": "42.50",
            "currency": "EUR",
            "action_source": "website",
            "event_time": T0_SECONDS,
        }
    )


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        ("2026-11-02T09:00:00+00:00", 1793610000),  # {{ event.timestamp }}
        ("2026-11-02T10:00:00+01:00", 1793610000),
        ("2026-11-02T09:00:00Z", 1793610000),
        ("2026-11-02T09:00:00", 1793610000),  # no offset: UTC
        ("1793610000", 1793610000),
    ],
)
def test_event_time_from_iso_or_unix_seconds(written: str, seconds: int) -> None:
    assert finish({"event_name": "Lead", "event_time": written})["event_time"] == str(seconds)


@pytest.mark.parametrize("source", ["website", "physical_store", "system_generated", "other"])
def test_meta_action_sources(source: str) -> None:
    assert finish({"event_name": "Lead", "action_source": source})["action_source"] == source


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ({"event_name": ""}, "event_name is empty: name the event, e.g. Purchase or Lead"),
        ({"event_name": "x" * 51}, "is not an event name Meta takes: one line of at most 50"),
        ({"event_name": "Sign\nUp"}, "is not an event name Meta takes"),
        ({"action_source": "Website"}, "action_source 'Website' is not one of Meta's: website,"),
        ({"event_time": "1793610000000"}, "looks like milliseconds: Meta takes Unix seconds"),
        ({"event_time": "yesterday"}, "is neither Unix seconds nor an ISO 8601 time"),
        ({"pixel_id": "12 34"}, "pixel_id '12 34' is not a Meta pixel id (digits only)"),
        ({"value": "42,50", "currency": "EUR"}, "value '42,50' is not a number"),
        ({"value": "NaN", "currency": "EUR"}, "value 'NaN' is not a number"),
        ({"value": "1e15", "currency": "EUR"}, "value '1e15' is too large"),
        ({"value": "10", "currency": "euro"}, "currency 'euro' is not an ISO 4217 code"),
        ({"value": "10"}, "currency is missing: Meta takes a value with its currency"),
        ({"currency": "EUR"}, "value is missing: Meta takes a value with its currency"),
        ({"event_name": "Purchase"}, "Meta requires value and currency for Purchase events"),
        ({"event_source_url": "shop.example/cart"}, "is not a web address"),
        ({"event_source_url": "javascript:alert(1)"}, "is not a web address"),
        ({"event_id": "a\nb"}, "event_id holds control characters"),
    ],
)
def test_content_meta_would_refuse_is_refused_with_its_reason(
    content: dict[str, str], reason: str
) -> None:
    with pytest.raises(ContentRefused) as refused:
        finish({"event_name": "Lead", **content})
    assert reason in str(refused.value)
