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
    - meta_audience: audience_id
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


class Channel(Protocol):
    name: str

    def send(self, message: Message) -> SendResult: ...
