"""Segment's event spec, checked field by field so an error names exactly what is wrong.

String lengths are the database's: an event that passes here fits its columns (`events`,
`profile_identities`, `profile_traits`), so nothing accepted with a 200 fails at routing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.events.event_time import too_early
from app.profiles.models import CONTACT_TRAITS

# Segment's documented limits, in UTF-8 bytes of JSON.
MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
# The VARCHAR columns ingest fills: events.message_id/name/user_id/anonymous_id,
# profile_identities.value (userId, anonymousId, previousId, email, phone), profile_traits.name.
MAX_STORED_STRING = 255
# What the identify traits that become identities must be.
_CONTACT_TYPES: dict[str, tuple[type, ...]] = {"email": (str,), "phone": (str, int)}
_CONTACT_TYPE_NAMES = {"email": "a string", "phone": "a string or an integer"}

EventType = Literal["track", "identify", "page", "screen", "group", "alias"]


class SegmentEvent(BaseModel):
    """One call. Unknown fields are kept (Segment passes them through), known ones typed."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    type: EventType
    message_id: str | None = Field(default=None, alias="messageId", max_length=MAX_STORED_STRING)
    user_id: str | None = Field(default=None, alias="userId", max_length=MAX_STORED_STRING)
    anonymous_id: str | None = Field(
        default=None, alias="anonymousId", max_length=MAX_STORED_STRING
    )
    previous_id: str | None = Field(default=None, alias="previousId", max_length=MAX_STORED_STRING)
    event: str | None = Field(default=None, max_length=MAX_STORED_STRING)
    name: str | None = Field(default=None, max_length=MAX_STORED_STRING)
    timestamp: datetime | None = None
    original_timestamp: datetime | None = Field(default=None, alias="originalTimestamp")
    sent_at: datetime | None = Field(default=None, alias="sentAt")
    properties: dict[str, Any] | None = None
    traits: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None

    @field_validator("user_id", "anonymous_id", "previous_id", mode="before")
    @classmethod
    def _ids_as_strings(cls, value: Any) -> Any:
        # SDKs send numeric ids unquoted; Segment stores them as strings.
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("timestamp", "original_timestamp", "sent_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamp needs a time zone (ISO 8601, e.g. 2026-01-31T10:00:00Z)")
        problem = too_early(value)
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _required_by_type(self) -> SegmentEvent:
        if not (self.user_id or self.anonymous_id):
            raise ValueError("userId or anonymousId is required")
        if self.type == "track" and not self.event:
            raise ValueError("event is required for a track call")
        if self.type == "alias" and not (self.previous_id and self.user_id):
            raise ValueError("previousId and userId are required for an alias call")
        return self


def stored_string_problem(event: SegmentEvent) -> tuple[tuple[str, str], str] | None:
    """Where an identify's traits would not fit the profile tables: (field path, why).

    Trait names are `profile_traits.name`; `email` and `phone` become identities, matched as
    text, so they must be text (a phone may be an integer) that fits the column."""
    if event.type != "identify" or not event.traits:
        return None
    for name, value in event.traits.items():
        if len(name) > MAX_STORED_STRING:
            return ("traits", name), f"trait names are limited to {MAX_STORED_STRING} characters"
        if name not in CONTACT_TRAITS or value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, _CONTACT_TYPES[name]):
            return ("traits", name), f"expected {_CONTACT_TYPE_NAMES[name]}"
        if len(str(value).strip()) > MAX_STORED_STRING:
            return ("traits", name), f"longer than {MAX_STORED_STRING} characters"
    return None
