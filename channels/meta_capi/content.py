"""A conversion event's content: what a journey step may say, checked and completed when the
step renders it, so the delivery row holds exactly what Meta will get and a bad value fails
the delivery with its reason before any call.

`finish` keeps its own output unchanged (the adapter runs it again on what it is handed), and
stamps `event_time` once: a resent event carries the time it was first rendered at, so Meta
sees the same event again, not a new one.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit

from app import clock
from channels.base import ContentRefused
from channels.meta_capi.settings import PIXEL_ID

EVENT_NAME = "event_name"
# Keys a step may leave out: `finish` (or, for `event_id`, the adapter) supplies them.
EVENT_ID = "event_id"
EVENT_TIME = "event_time"
ACTION_SOURCE = "action_source"
PIXEL = "pixel_id"
VALUE = "value"
CURRENCY = "currency"
SOURCE_URL = "event_source_url"
USER_AGENT = "client_user_agent"
OPTIONAL = frozenset(
    {EVENT_ID, EVENT_TIME, ACTION_SOURCE, PIXEL, VALUE, CURRENCY, SOURCE_URL, USER_AGENT}
)

# Server Event Parameters, `action_source`: where the conversion happened.
ACTION_SOURCES = (
    "website",
    "app",
    "email",
    "phone_call",
    "chat",
    "physical_store",
    "system_generated",
    "business_messaging",
    "other",
)
DEFAULT_ACTION_SOURCE = "website"
# Meta's limit for a custom event name (Meta Pixel, "Custom events").
MAX_EVENT_NAME = 50
# Standard events Meta refuses without a value and its currency (Custom Data Parameters).
VALUE_REQUIRED = frozenset({"Purchase"})
_DIGITS = re.compile(r"[0-9]+")
# Ten digits is a Unix time in seconds until 2286; thirteen is one in milliseconds.
MAX_SECONDS_DIGITS = 11
# Meta keeps `value` as a float: past this a sum is a mistake, and floats lose the cents.
MAX_VALUE = Decimal(10) ** 12
_CURRENCY = re.compile(r"[A-Za-z]{3}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def finish(content: dict[str, str]) -> dict[str, str]:
    """The event as it will be sent: blank values left out (a template that renders nothing
    means "not given"), defaults filled in, every value checked. Raises `ContentRefused`."""
    event = {key: value.strip() for key, value in content.items() if value.strip()}
    name = event.get(EVENT_NAME)
    if name is None:
        raise ContentRefused("event_name is empty: name the event, e.g. Purchase or Lead")
    if len(name) > MAX_EVENT_NAME or _CONTROL.search(name):
        raise ContentRefused(
            f"event_name {name[:60]!r} is not an event name Meta takes: one line of at most "
            f"{MAX_EVENT_NAME} characters"
        )
    event[ACTION_SOURCE] = _action_source(event.get(ACTION_SOURCE, DEFAULT_ACTION_SOURCE))
    event[EVENT_TIME] = str(event_time(event.get(EVENT_TIME)))
    if PIXEL in event and not PIXEL_ID.fullmatch(event[PIXEL]):
        raise ContentRefused(f"pixel_id {event[PIXEL]!r} is not a Meta pixel id (digits only)")
    _value_and_currency(event, name)
    if SOURCE_URL in event:
        url = urlsplit(event[SOURCE_URL])
        if url.scheme not in ("http", "https") or not url.hostname or _CONTROL.search(url.geturl()):
            raise ContentRefused(
                f"event_source_url {event[SOURCE_URL][:100]!r} is not a web address: the page "
                "the event happened on, http(s)://…"
            )
    for key in (EVENT_ID, USER_AGENT):
        if key in event and _CONTROL.search(event[key]):
            raise ContentRefused(f"{key} holds control characters (a line break?)")
    return event


def event_time(written: str | None) -> int:
    """Unix seconds from `1767225600` or an ISO 8601 time (`{{ event.timestamp }}`; without an
    offset it is UTC); when not written, now: when the step ran."""
    if written is None:
        return int(clock.now().timestamp())
    if _DIGITS.fullmatch(written):
        if len(written) > MAX_SECONDS_DIGITS:
            raise ContentRefused(
                f"event_time {written!r} looks like milliseconds: Meta takes Unix seconds"
            )
        return int(written)
    try:
        moment = datetime.fromisoformat(written)
    except ValueError:
        raise ContentRefused(
            f"event_time {written[:40]!r} is neither Unix seconds nor an ISO 8601 time, e.g. "
            '"{{ event.timestamp }}"'
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def amount(written: str) -> Decimal:
    """A decimal number (`42.5`) below a trillion; anything else raises `ContentRefused`."""
    try:
        number = Decimal(written)
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite():
        raise ContentRefused(f"value {written[:40]!r} is not a number, e.g. 42.50")
    if abs(number) >= MAX_VALUE:
        raise ContentRefused(f"value {written[:40]!r} is too large: at most 999999999999.99")
    return number


def _action_source(written: str) -> str:
    if written not in ACTION_SOURCES:
        raise ContentRefused(
            f"action_source {written[:40]!r} is not one of Meta's: {', '.join(ACTION_SOURCES)}"
        )
    return written


def _value_and_currency(event: dict[str, str], name: str) -> None:
    """A value needs its currency and a currency its value; a Purchase needs both."""
    if VALUE in event:
        event[VALUE] = str(amount(event[VALUE]))
    if CURRENCY in event:
        if not _CURRENCY.fullmatch(event[CURRENCY]):
            raise ContentRefused(
                f"currency {event[CURRENCY][:40]!r} is not an ISO 4217 code, e.g. EUR or USD"
            )
        event[CURRENCY] = event[CURRENCY].upper()
    if name in VALUE_REQUIRED and not (VALUE in event and CURRENCY in event):
        raise ContentRefused(
            f"Meta requires value and currency for {name} events, e.g. value: "
            '"{{ event.properties.total }}", currency: EUR'
        )
    if (VALUE in event) != (CURRENCY in event):
        missing = CURRENCY if VALUE in event else VALUE
        raise ContentRefused(f"{missing} is missing: Meta takes a value with its currency")
