"""A local stand-in for the Conversions API edge of the Graph API (Ads Pixel Events):
`POST /{version}/{pixel_id}/events` with `data` (a list of server events, or that list as
JSON text in a form), `access_token` and optionally `test_event_code`, as a JSON body or form
fields. Other paths get the Custom Audience stand-in it extends.

Each event is checked the way Meta's "Server Event Parameters", "Customer Information
Parameters" and "Custom Data Parameters" describe it: `event_name`, `event_time` (Unix
seconds, at most 7 days old: an older one fails the whole request), `action_source` (one of
Meta's) and `user_data` required; `em` and `ph` only as SHA-256 hex digests; `value` a
number with an ISO 4217 `currency`, both required for Purchase; at most 1,000 events per
request. A refusal is a Graph error (`{"error": {"message", "type", "code", "fbtrace_id"}}`)
for the whole request, as Meta answers.

Accepted events are kept per pixel, and counted once per (pixel, event_name, event_id) as
Meta deduplicates them (`counted`), so a test can tell a repeat from a second conversion.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from tests.providers.meta import (
    SHA256_HEX,
    TEST_ACCESS_TOKEN,
    MetaGraphServer,
    _invalid_parameter,
    _params,
    fbtrace_id,
    unsupported_request,
)
from tests.providers.server import RecordedRequest, Reply

TEST_PIXEL_ID = "1234567890123456"
MAX_EVENTS = 1000
MAX_AGE_SECONDS = 7 * 24 * 3600
ACTION_SOURCES = frozenset(
    {
        "email",
        "website",
        "app",
        "phone_call",
        "chat",
        "physical_store",
        "system_generated",
        "business_messaging",
        "other",
    }
)
EVENT_KEYS = frozenset(
    {
        "event_name", "event_time", "user_data", "custom_data", "event_source_url", "opt_out",
        "event_id", "action_source", "data_processing_options",
        "data_processing_options_country", "data_processing_options_state", "app_data",
        "original_event_data", "attribution_data", "referrer_url", "messaging_channel",
    }
)  # fmt: skip
HASHED_USER_KEYS = frozenset({"em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "country"})
USER_KEYS = HASHED_USER_KEYS | {
    "external_id", "client_ip_address", "client_user_agent", "fbc", "fbp", "subscription_id",
    "fb_login_id", "lead_id", "anon_id", "madid", "page_id", "page_scoped_user_id", "ctwa_clid",
    "ig_account_id", "ig_sid",
}  # fmt: skip
VALUE_REQUIRED = frozenset({"Purchase"})

_EVENTS = re.compile(r"^/(?P<version>v\d+\.\d+)/(?P<pixel>[^/]+)/events$")
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")


class MetaEventsServer(MetaGraphServer):
    def __init__(
        self,
        access_token: str = TEST_ACCESS_TOKEN,
        pixel_ids: frozenset[str] | None = frozenset({TEST_PIXEL_ID}),
    ) -> None:
        super().__init__(access_token)
        # Only these pixels exist (None: any pixel id of digits); a test may change them.
        self._initial_pixel_ids = pixel_ids
        self.pixel_ids = pixel_ids
        # Meta's clock, for the 7-day limit; a test on a manual clock points it there.
        self.now: Callable[[], float] = time.time
        # Every accepted event as received, with its pixel and test code.
        self.events: list[dict[str, Any]] = []
        # What Meta counts: one event per (pixel, event_name, event_id).
        self.counted: dict[tuple[str, str, str], dict[str, Any]] = {}

    def reset(self) -> None:
        super().reset()
        with self._condition:
            self.events.clear()
            self.counted.clear()
            self.now = time.time
            self.pixel_ids = self._initial_pixel_ids

    def respond(self, request: RecordedRequest) -> Reply:
        route = _EVENTS.match(request.path)
        if route is None:
            return super().respond(request)
        params = _params(request)
        if (refused := self.refused_token(request, params)) is not None:
            return refused
        pixel = route["pixel"]
        if (
            request.method != "POST"
            or not pixel.isdigit()
            or (self.pixel_ids is not None and pixel not in self.pixel_ids)
        ):
            return unsupported_request(request.method, pixel)
        data = params.get("data")
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except ValueError:
                return _invalid_parameter("param data must be an array")
        if not isinstance(data, list) or not data:
            return _invalid_parameter("The parameter data is required")
        if len(data) > MAX_EVENTS:
            return _invalid_parameter(f"Too many events: at most {MAX_EVENTS} per request")
        code = params.get("test_event_code")
        if code is not None and (not isinstance(code, str) or not code):
            return _invalid_parameter("param test_event_code must be a non-empty string")
        now = self.now()
        for index, event in enumerate(data):
            problem = check_event(event, now)
            if problem is not None:
                return _invalid_parameter(f"Invalid parameter: data[{index}]: {problem}")
        with self._condition:
            for event in data:
                self.events.append({"pixel_id": pixel, "test_event_code": code, **event})
                key = (pixel, event["event_name"], str(event.get("event_id", "")))
                self.counted.setdefault(key, event)
        return Reply.json(
            200, {"events_received": len(data), "messages": [], "fbtrace_id": fbtrace_id()}
        )


def check_event(event: Any, now: float) -> str | None:
    """What is wrong with one server event, or None."""
    if not isinstance(event, dict):
        return "each event must be an object"
    unknown = sorted(set(event) - EVENT_KEYS)
    if unknown:
        return f"unknown field(s) {', '.join(unknown)}"
    name = event.get("event_name")
    if not isinstance(name, str) or not name:
        return "event_name is required"
    moment = event.get("event_time")
    if not isinstance(moment, int) or isinstance(moment, bool):
        return "event_time must be a Unix timestamp in seconds"
    if moment < now - MAX_AGE_SECONDS:
        return "event_time is more than 7 days in the past"
    if event.get("action_source") not in ACTION_SOURCES:
        return "action_source is required, one of: " + ", ".join(sorted(ACTION_SOURCES))
    if "event_id" in event and not isinstance(event["event_id"], str):
        return "event_id must be a string"
    url = event.get("event_source_url")
    if url is not None and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
        return "event_source_url must be an http(s) URL"
    return _check_user_data(event.get("user_data")) or _check_custom_data(
        event.get("custom_data"), name
    )


def _check_user_data(user: Any) -> str | None:
    if not isinstance(user, dict) or not user:
        return "user_data is required: at least one customer information parameter"
    unknown = sorted(set(user) - USER_KEYS)
    if unknown:
        return f"user_data: unknown field(s) {', '.join(unknown)}"
    for key, value in user.items():
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str) and v for v in values):
            return f"user_data.{key} must be a string or a list of strings"
        if key in HASHED_USER_KEYS and not all(SHA256_HEX.match(v) for v in values):
            return f"user_data.{key} must be hashed with SHA-256 (64 lowercase hex characters)"
    return None


def _check_custom_data(custom: Any, name: str) -> str | None:
    if custom is None:
        custom = {}
    if not isinstance(custom, dict):
        return "custom_data must be an object"
    value, currency = custom.get("value"), custom.get("currency")
    if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
        return "custom_data.value must be a number"
    if currency is not None and not (isinstance(currency, str) and _CURRENCY.match(currency)):
        return "custom_data.currency must be an ISO 4217 code"
    if name in VALUE_REQUIRED and (value is None or currency is None):
        return f"custom_data.value and custom_data.currency are required for {name} events"
    return None
