"""The one small protocol every channel adapter implements.

A channel receives a fully rendered `Message` and returns a `SendResult`; it never touches the
database, the queue or the clock. Delivery policy (consent, caps, retries) lives in
`app.delivery`, so a new provider is one module here plus one line in the registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class Outcome(StrEnum):
    SENT = "sent"
    DRY_RUN = "dry_run"
    FAILED = "failed"


class Feedback(StrEnum):
    """What a provider told us about the person, beyond this one message. The adapter only
    reports it; the delivery service writes it to the profile, so the next send is
    suppressed before any provider call."""

    SMS_OPTED_OUT = "sms_opted_out"  # Twilio 21610: the person replied STOP
    PHONE_INVALID = "phone_invalid"  # Twilio 21211, or not a valid E.164 number at all


@dataclass(frozen=True)
class Recipient:
    profile_id: str
    email: str | None = None
    phone: str | None = None


@dataclass(frozen=True)
class Message:
    """A rendered message. `content` keys depend on the channel:

    - email: subject, html, text
    - sms: text
    - meta_audience: audience_id, and optionally operation ("add", the default, or "remove")
    """

    delivery_id: str
    channel: str
    recipient: Recipient
    content: dict[str, Any]
    journey_id: str | None = None


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    provider_message_id: str | None = None
    # The provider's own words, kept verbatim so ops can see why a message was not sent.
    error: str | None = None
    status_code: int | None = None
    # True when retrying may succeed (timeouts, 429, 5xx); False for permanent refusals.
    transient: bool = False
    retry_after_seconds: float | None = None
    # What a dry run would have sent, for the record.
    detail: dict[str, Any] = field(default_factory=dict)
    feedback: tuple[Feedback, ...] = ()


class Channel(Protocol):
    name: str

    def send(self, message: Message) -> SendResult: ...
