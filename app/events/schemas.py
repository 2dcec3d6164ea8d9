"""Segment's event spec, checked field by field so an error names exactly what is wrong."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Segment's documented limits.
MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024

EventType = Literal["track", "identify", "page", "screen", "group", "alias"]


class SegmentEvent(BaseModel):
    """One call. Unknown fields are kept (Segment passes them through), known ones typed."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    type: EventType
    message_id: str | None = Field(default=None, alias="messageId", max_length=255)
    user_id: str | None = Field(default=None, alias="userId", max_length=255)
    anonymous_id: str | None = Field(default=None, alias="anonymousId", max_length=255)
    previous_id: str | None = Field(default=None, alias="previousId", max_length=255)
    event: str | None = Field(default=None, max_length=255)
    name: str | None = Field(default=None, max_length=255)
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
        if value is not None and value.tzinfo is None:
            raise ValueError("timestamp needs a time zone (ISO 8601, e.g. 2026-01-31T10:00:00Z)")
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
