"""MetaConversions against the local Graph stand-in (Conversions API edge), over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from app.settings import Settings
from channels.base import Message, Outcome, Recipient
from channels.meta_capi.adapter import MetaConversions
from channels.meta_capi.settings import MetaCapiSettings
from tests.channels.meta_capi.graph_events import TEST_PIXEL_ID, MetaEventsServer
from tests.helpers import (
    EMAIL_HASH,
    PHONE_HASH,
    RAW_EMAIL,
    RAW_PHONE,
    assert_no_raw_identifier,
    sha256,
)
from tests.providers.meta import TEST_ACCESS_TOKEN, graph_error
from tests.providers.server import RecordedRequest, unused_port

# 2026-11-02T09:00:00Z, and the stand-in's "now" a minute later.
EVENT_TIME = 1793610000
EMAIL = "e-mail address"
RAW_FORMS = (RAW_EMAIL, RAW_PHONE, "33612345678", "0612345678")

Build = Callable[..., MetaConversions]


def message(
    email: str | None = RAW_EMAIL, phone: str | None = RAW_PHONE, **content: str
) -> Message:
    return Message(
        delivery_id="41",
        channel="meta_capi",
        recipient=Recipient(profile_id="p-3", email=email, phone=phone),
        content={"event_name": "Lead", "event_time": str(EVENT_TIME), **content},
        journey_id="lead-signal",
    )


@pytest.fixture
def build(capi: MetaEventsServer, make_settings: Callable[..., Settings]) -> Build:
    """The adapter pointed at the stand-in; keyword arguments are its own settings."""
    capi.now = lambda: EVENT_TIME + 60.0

    def make(**own: Any) -> MetaConversions:
        values = {"meta_pixel_id": TEST_PIXEL_ID, "meta_capi_test_event_code": None, **own}
        return MetaConversions(
            make_settings(**capi.settings_overrides()), MetaCapiSettings(**values)
        )

    return make


def body_of(request: RecordedRequest) -> dict[str, Any]:
    assert request.header("content-type") == "application/json"
    body = json.loads(request.raw_body)
    assert isinstance(body, dict)
    return body


def test_a_conversion_goes_to_the_pixel_with_hashed_identifiers_only(
    build: Build, capi: MetaEventsServer
) -> None:
    result = build().send(message())

    assert (result.outcome, result.status_code) == (Outcome.SENT, 200), result.error
    (request,) = capi.requests
    assert (request.method, request.path) == ("POST", f"/v21.0/{TEST_PIXEL_ID}/events")
    body = body_of(request)
    assert body["access_token"] == TEST_ACCESS_TOKEN
    assert "test_event_code" not in body
    assert body["data"] == [
        {
            "event_name": "Lead",
            "event_time": EVENT_TIME,
            "event_id": "carillon-delivery-41",
            "action_source": "website",
            "user_data": {
                "external_id": [sha256("p-3")],
                "em": [EMAIL_HASH],
                "ph": [PHONE_HASH],
            },
        }
    ]
    assert_no_raw_identifier(request, *RAW_FORMS)
    # The id Meta deduplicates on is the one recorded on the delivery.
    assert result.provider_message_id == "carillon-delivery-41"
    assert list(capi.counted) == [(TEST_PIXEL_ID, "Lead", "carillon-delivery-41")]


def test_the_step_names_the_event_id_pixel_source_value_and_page(
    build: Build, capi: MetaEventsServer
) -> None:
    capi.pixel_ids = None  # any pixel exists
    sent = message(
        event_name="Purchase",
        event_id="order-1001",
        pixel_id="987654321",
        action_source="physical_store",
        value="42.50",
        currency="eur",
        event_source_url="https://shop.example/checkout/done",
        client_user_agent="Mozilla/5.0 (X11; Linux x86_64)",
    )
    result = build().send(sent)

    assert result.outcome is Outcome.SENT, result.error
    assert result.provider_message_id == "order-1001"
    (request,) = capi.requests
    assert request.path == "/v21.0/987654321/events"
    (event,) = body_of(request)["data"]
    assert event["event_name"] == "Purchase"
    assert event["event_id"] == "order-1001"
    assert event["action_source"] == "physical_store"
    assert event["custom_data"] == {"value": 42.5, "currency": "EUR"}
    assert event["event_source_url"] == "https://shop.example/checkout/done"
    assert event["user_data"]["client_user_agent"] == "Mozilla/5.0 (X11; Linux x86_64)"
    assert_no_raw_identifier(request, *RAW_FORMS)


def test_the_test_event_code_goes_with_every_event(build: Build, capi: MetaEventsServer) -> None:
    assert build(meta_capi_test_event_code="TEST4242").send(message()).outcome is Outcome.SENT
    assert body_of(capi.requests[0])["test_event_code"] == "TEST4242"
    assert capi.events[0]["test_event_code"] == "TEST4242"


def test_email_only_and_phone_only(build: Build, capi: MetaEventsServer) -> None:
    adapter = build()
    assert adapter.send(message(phone=None)).outcome is Outcome.SENT
    assert adapter.send(message(email=None)).outcome is Outcome.SENT
    first, second = (body_of(r)["data"][0]["user_data"] for r in capi.requests)
    assert (first.get("em"), first.get("ph")) == ([EMAIL_HASH], None)
    assert (second.get("em"), second.get("ph")) == (None, [PHONE_HASH])


@pytest.mark.parametrize(("email", "phone"), [(None, None), ("  ", "--")])
def test_nobody_to_match_fails_without_a_call(
    build: Build, capi: MetaEventsServer, email: str | None, phone: str | None
) -> None:
    result = build().send(message(email=email, phone=phone))
    assert (result.outcome, result.transient) == (Outcome.FAILED, False)
    assert result.error == (
        "recipient p-3 has neither e-mail nor phone: Meta could not match the event to anyone"
    )
    assert capi.requests == []


def test_without_a_pixel_anywhere_nothing_is_sent(build: Build, capi: MetaEventsServer) -> None:
    result = build(meta_pixel_id=None).send(message())
    assert (result.outcome, result.transient) == (Outcome.FAILED, False)
    assert result.error == "no Meta pixel: set CARILLON_META_PIXEL_ID or give the step a pixel_id"
    assert capi.requests == []


@pytest.mark.parametrize(
    ("content", "what"),
    [
        ({"event_id": "lead-ANN.Martin@example.com"}, "e-mail address"),
        ({"event_source_url": "https://shop.example/?m=ann.martin%40example.com"}, EMAIL),
        ({"event_source_url": "https://shop.example/?m=ann.martin@example.com+x"}, EMAIL),
        ({"event_source_url": "https://shop.example/thanks/+33-6-12-34-56-78"}, "phone number"),
        ({"client_user_agent": "ann.martin@example.com"}, "e-mail address"),
    ],
)
def test_a_raw_contact_in_a_templated_field_is_refused_before_any_call(
    build: Build, capi: MetaEventsServer, content: dict[str, str], what: str
) -> None:
    """A step may template any field from the profile; an e-mail or phone number written
    into one (percent-encoded too) would leave Carillon unhashed, so nothing is sent."""
    result = build().send(message(**content))
    (key,) = content
    assert (result.outcome, result.transient) == (Outcome.FAILED, False)
    assert result.error == (
        f"{key} would carry the person's {what} as written: Meta takes contact details "
        "hashed, in user_data, only"
    )
    assert capi.requests == []


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ({"event_name": " "}, "event_name is empty"),
        ({"action_source": "web"}, "action_source 'web' is not one of Meta's"),
        ({"event_name": "Purchase"}, "Meta requires value and currency for Purchase events"),
        ({"pixel_id": "px-1"}, "pixel_id 'px-1' is not a Meta pixel id"),
    ],
)
def test_content_that_cannot_be_sent_fails_without_a_call(
    build: Build, capi: MetaEventsServer, content: dict[str, str], reason: str
) -> None:
    """Content is checked when the step renders it; a row replayed or written by hand is
    checked again before the call."""
    result = build().send(message(**content))
    assert (result.outcome, result.transient) == (Outcome.FAILED, False)
    assert (result.error or "").startswith(reason)
    assert capi.requests == []


# --------------------------------------------------------------------------- Graph's answers


def test_an_unknown_pixel_is_graphs_permanent_refusal(build: Build, capi: MetaEventsServer) -> None:
    result = build(meta_pixel_id="555").send(message())
    assert (result.outcome, result.status_code, result.transient) == (Outcome.FAILED, 400, False)
    assert result.error is not None
    assert result.error.startswith("100/33: Unsupported post request. Object with ID '555'")


def test_an_event_older_than_seven_days_is_refused_by_meta(
    build: Build, capi: MetaEventsServer
) -> None:
    capi.now = lambda: EVENT_TIME + 8 * 24 * 3600.0
    result = build().send(message())
    assert (result.outcome, result.status_code, result.transient) == (Outcome.FAILED, 400, False)
    assert "event_time is more than 7 days in the past" in (result.error or "")
    assert capi.events == []


def test_a_wrong_token_is_permanent(
    capi: MetaEventsServer, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(meta_access_token="EAAB-other", meta_graph_url=capi.base_url)
    own = MetaCapiSettings(meta_pixel_id=TEST_PIXEL_ID, meta_capi_test_event_code=None)
    result = MetaConversions(settings, own).send(message())
    assert (result.outcome, result.status_code, result.transient) == (Outcome.FAILED, 400, False)
    assert (result.error or "").startswith("190: Invalid OAuth access token")


@pytest.mark.parametrize("code", [1, 2, 4, 17, 32, 341, 368, 613, 80000, 80014])
def test_throttling_and_service_codes_are_transient(
    build: Build, capi: MetaEventsServer, code: int
) -> None:
    capi.fail_next(400, graph_error(code, f"(#{code}) Calls to this api have exceeded the rate"))
    result = build().send(message())
    assert (result.outcome, result.transient) == (Outcome.FAILED, True)
    assert (result.error or "").startswith(f"{code}: ")


@pytest.mark.parametrize("code", [100, 190, 200, 2500, 79999, 80015])
def test_other_codes_are_permanent(build: Build, capi: MetaEventsServer, code: int) -> None:
    capi.fail_next(400, graph_error(code, f"(#{code}) refused"))
    result = build().send(message())
    assert (result.outcome, result.transient) == (Outcome.FAILED, False)


def test_429_and_5xx_are_transient_and_keep_retry_after(
    build: Build, capi: MetaEventsServer
) -> None:
    adapter = build()
    capi.fail_next(429, graph_error(4, "Application request limit reached"), {"Retry-After": "7"})
    capi.fail_next(503, "Service Unavailable")
    throttled, down = adapter.send(message()), adapter.send(message())
    assert (throttled.transient, throttled.retry_after_seconds) == (True, 7.0)
    assert (down.transient, down.status_code, down.error) == (
        True,
        503,
        "Meta HTTP 503: Service Unavailable",
    )


def test_usage_headers_say_how_long_to_wait(build: Build, capi: MetaEventsServer) -> None:
    usage = {"123": [{"type": "ads_management", "estimated_time_to_regain_access": 3}]}
    capi.fail_next(
        400,
        graph_error(80014, "There have been too many calls"),
        {"X-Business-Use-Case-Usage": json.dumps(usage)},
    )
    result = build().send(message())
    assert (result.transient, result.retry_after_seconds) == (True, 180.0)


def test_meta_unreachable_is_transient(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        meta_access_token=TEST_ACCESS_TOKEN, meta_graph_url=f"http://127.0.0.1:{unused_port()}"
    )
    own = MetaCapiSettings(meta_pixel_id=TEST_PIXEL_ID, meta_capi_test_event_code=None)
    result = MetaConversions(settings, own).send(message())
    assert (result.outcome, result.transient) == (Outcome.FAILED, True)
    assert result.error == "Meta unreachable: ConnectError"


def test_an_unreadable_success_is_transient(build: Build, capi: MetaEventsServer) -> None:
    capi.fail_next(200, "<html>proxy</html>")
    result = build().send(message())
    assert (result.outcome, result.transient, result.status_code) == (Outcome.FAILED, True, 200)


def test_an_event_meta_did_not_receive_is_a_failure(build: Build, capi: MetaEventsServer) -> None:
    capi.fail_next(200, {"events_received": 0, "messages": ["dropped"], "fbtrace_id": "x"})
    result = build().send(message())
    assert (result.outcome, result.transient) == (Outcome.FAILED, False)
    assert result.error == "Meta received 0 of 1 event: dropped"


def test_a_repeat_of_the_same_delivery_counts_once_at_meta(
    build: Build, capi: MetaEventsServer
) -> None:
    adapter = build()
    assert adapter.send(message()).outcome is Outcome.SENT
    assert adapter.send(message()).outcome is Outcome.SENT
    assert len(capi.events) == 2
    assert len(capi.counted) == 1


def test_the_adapter_needs_the_token(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ValueError, match="meta_access_token"):
        MetaConversions(make_settings(), MetaCapiSettings(meta_pixel_id=TEST_PIXEL_ID))
