"""Conversion events to Meta's Conversions API: `POST /{version}/{pixel_id}/events`.

One server event per delivery, as a JSON body `{"data": [event], "access_token": …}` (plus
`test_event_code` when set). The person is matched on `user_data`: SHA-256 hashes of the
e-mail and phone normalized by the same rules as the Custom Audiences (the helpers of
`channels.meta_audience`), and of Carillon's profile id as `external_id`. The raw e-mail or
phone never leaves Carillon: user_data holds hashes only, and an event whose other fields
would carry one as written (an `event_id` templated from the e-mail, say) is refused before
any call.

`event_id` is what Meta deduplicates on, with the event name, against the browser pixel's
`eventID` and against a repeat of this very event: a step templates it from the event (the
order id the pixel also sends), else it is this delivery's own id. A resent delivery therefore
counts once at Meta, which is why an abandoned call is resent (`resend_when_abandoned`).

Graph errors are read as the audiences read them (`graph_answer`): throttling and
service codes, 429 and 5xx are transient; the rest (100 invalid parameter, 190 token) are not.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote_plus

import httpx

from app.settings import Settings
from channels.base import ContentRefused, Message, Outcome, Recipient, SendResult
from channels.meta_audience.adapter import (
    _int,
    graph_answer,
    hashed_row,
    normalize_email,
    normalize_phone,
    sha256_hex,
)
from channels.meta_capi import content
from channels.meta_capi.settings import MetaCapiSettings

EVENT_ID_PREFIX = "carillon-delivery-"
# Fields of the event built from the step's content (user_data is built from hashes only).
_FROM_CONTENT = ("event_name", "event_id", "event_source_url", "custom_data")
_NOT_DIGITS = re.compile(r"\D")
# A shorter run of digits is too common (prices, dates) to say it is the phone number.
_MIN_PHONE_DIGITS = 7


class MetaConversions:
    name = "meta_capi"

    def __init__(
        self, settings: Settings, own: MetaCapiSettings, client: httpx.Client | None = None
    ) -> None:
        self._token = own.token_for("MetaConversions")
        self._base = own.graph_base()
        self._pixel = own.meta_pixel_id
        self._test_event_code = own.meta_capi_test_event_code
        self._client = client or httpx.Client(timeout=settings.provider_timeout_seconds)

    def close(self) -> None:
        self._client.close()

    def send(self, message: Message) -> SendResult:
        try:
            finished = content.finish({k: str(v) for k, v in message.content.items()})
        except ContentRefused as exc:
            return SendResult(Outcome.FAILED, error=str(exc))
        pixel = finished.get(content.PIXEL) or self._pixel
        if pixel is None:
            return SendResult(
                Outcome.FAILED,
                error="no Meta pixel: set CARILLON_META_PIXEL_ID or give the step a pixel_id",
            )
        user_data = _user_data(message.recipient, finished)
        if user_data is None:
            return SendResult(
                Outcome.FAILED,
                error=f"recipient {message.recipient.profile_id} has neither e-mail nor phone: "
                "Meta could not match the event to anyone",
            )
        event = server_event(finished, user_data, message.delivery_id)
        leak = _raw_contact(event, message.recipient)
        if leak is not None:
            key, what = leak
            return SendResult(
                Outcome.FAILED,
                error=f"{key} would carry the person's {what} as written: Meta takes contact "
                "details hashed, in user_data, only",
            )
        body: dict[str, Any] = {"data": [event], "access_token": self._token}
        if self._test_event_code:
            body["test_event_code"] = self._test_event_code
        try:
            response = self._client.post(f"{self._base}/{pixel}/events", json=body)
        except httpx.TransportError as exc:
            # Connection refused, DNS, timeouts: worth another try, and a repeat of an event
            # that did arrive counts once (same event_id).
            return SendResult(
                Outcome.FAILED, error=f"Meta unreachable: {type(exc).__name__}", transient=True
            )
        return _result(response, str(event["event_id"]))


def server_event(
    finished: dict[str, str], user_data: dict[str, Any], delivery_id: str
) -> dict[str, Any]:
    """The Server Event Parameters from finished content."""
    event: dict[str, Any] = {
        "event_name": finished[content.EVENT_NAME],
        "event_time": int(finished[content.EVENT_TIME]),
        "event_id": finished.get(content.EVENT_ID) or f"{EVENT_ID_PREFIX}{delivery_id}",
        "action_source": finished[content.ACTION_SOURCE],
        "user_data": user_data,
    }
    if content.SOURCE_URL in finished:
        event["event_source_url"] = finished[content.SOURCE_URL]
    if content.VALUE in finished:
        event["custom_data"] = {
            "value": float(content.amount(finished[content.VALUE])),
            "currency": finished[content.CURRENCY],
        }
    return event


def _user_data(recipient: Recipient, finished: dict[str, str]) -> dict[str, Any] | None:
    """Customer Information Parameters: hashes of the e-mail, phone and profile id, and the
    browser's user agent when the step gives it; None when there is nothing to match on."""
    row = hashed_row(recipient.email, recipient.phone)
    if row is None:
        return None
    email_hash, phone_hash = row
    data: dict[str, Any] = {"external_id": [sha256_hex(recipient.profile_id)]}
    if email_hash:
        data["em"] = [email_hash]
    if phone_hash:
        data["ph"] = [phone_hash]
    if content.USER_AGENT in finished:
        data["client_user_agent"] = finished[content.USER_AGENT]
    return data


def _raw_contact(event: dict[str, Any], recipient: Recipient) -> tuple[str, str] | None:
    """The first field built from content that holds the person's e-mail address or phone
    number as written (or percent-encoded), and which of the two."""
    fields = {key: event[key] for key in _FROM_CONTENT if key in event}
    if "client_user_agent" in event["user_data"]:
        fields["client_user_agent"] = event["user_data"]["client_user_agent"]
    email = normalize_email(recipient.email) if recipient.email else ""
    phone = normalize_phone(recipient.phone) if recipient.phone else ""
    for key, value in fields.items():
        # As a URL's query would carry it too: `ann%40example.com`, `+` for a space.
        text = unquote_plus(json.dumps(value, ensure_ascii=False)).lower()
        if email and email in text:
            return key, "e-mail address"
        if len(phone) >= _MIN_PHONE_DIGITS and phone in _NOT_DIGITS.sub("", text):
            return key, "phone number"
    return None


def _result(response: httpx.Response, event_id: str) -> SendResult:
    status = response.status_code
    body = graph_answer(response)
    if isinstance(body, SendResult):
        return body
    received = _int(body.get("events_received"))
    if received != 1:
        said = "; ".join(str(m) for m in body.get("messages") or [])
        return SendResult(
            Outcome.FAILED,
            error=f"Meta received {received or 0} of 1 event" + (f": {said}" if said else ""),
            status_code=status,
        )
    # The id Meta knows the event by, and the one to look for in Events Manager.
    return SendResult(Outcome.SENT, provider_message_id=event_id, status_code=status)
