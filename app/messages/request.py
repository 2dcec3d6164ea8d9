"""What `POST /v1/messages` takes, checked with the path to the field at fault.

One person (`userId`, `email` or `phone`), one channel, and either a message named in a journey
file (`message`, with `journey` when two files name one alike) or the content itself
(`content`, the keys the channel's spec asks for, templates allowed); `data` is what the
templates read as `event.properties`, so a message written for a journey reads the same here.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from app.errors import BadInput
from app.events import json_values
from app.events.schemas import MAX_EVENT_BYTES
from app.journeys.language.values import ID_PATTERN, MESSAGE_NAME_PATTERN
from app.profiles.references import MAX_LENGTH

# A receipt with its lines fits; a request is refused past this, like one tracked event.
MAX_REQUEST_BYTES = MAX_EVENT_BYTES
_WHO = ("userId", "email", "phone")


class SendRequest(BaseModel):
    """One transactional message to one person."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    user_id: str | None = Field(
        default=None,
        alias="userId",
        min_length=1,
        max_length=MAX_LENGTH,
        description="Who, by the userId the shop gave them.",
    )
    email: str | None = Field(
        default=None, min_length=1, max_length=MAX_LENGTH, description="Who, by e-mail address."
    )
    phone: str | None = Field(
        default=None, min_length=1, max_length=MAX_LENGTH, description="Who, by phone (E.164)."
    )
    channel: str = Field(
        min_length=1, max_length=32, description="The channel to send on, e.g. email or sms."
    )
    message: str | None = Field(
        default=None,
        pattern=f"^{MESSAGE_NAME_PATTERN}$",
        max_length=100,
        description="A message named under `messages:` in a journey file.",
    )
    journey: str | None = Field(
        default=None,
        pattern=f"^{ID_PATTERN}$",
        max_length=100,
        description="The journey whose `messages:` names `message`, when several do.",
    )
    content: dict[str, Any] | None = Field(
        default=None,
        description="The message itself instead of `message`: the channel's content keys "
        "(templates allowed) and its options, e.g. {subject, html, text} for email.",
    )
    data: dict[str, Any] = Field(
        default_factory=dict,
        description="What the templates read as `event.properties`, e.g. the order.",
    )

    @model_validator(mode="after")
    def _one_person_one_source(self) -> Self:
        given = [name for name, value in zip(_WHO, self.who(), strict=True) if value is not None]
        if len(given) != 1:
            named = ", ".join(given) if given else "none"
            raise ValueError(f"give exactly one of userId, email or phone (given: {named})")
        if (self.message is None) == (self.content is None):
            raise ValueError("give either message (a named message) or content, not both")
        if self.journey is not None and self.message is None:
            raise ValueError("journey names where `message` is written: give message too")
        return self

    def who(self) -> tuple[str | None, str | None, str | None]:
        return self.user_id, self.email, self.phone


def parse(raw: Any) -> SendRequest:
    """The request, or BadInput naming the field at fault."""
    if not isinstance(raw, dict):
        raise BadInput("body: expected a JSON object")
    try:
        size = json_values.checked_size(raw)
    except json_values.InvalidEvent as exc:
        raise BadInput(str(exc)) from None
    if size > MAX_REQUEST_BYTES:
        raise BadInput(f"body: {size} bytes; the limit is {MAX_REQUEST_BYTES} (32 KB)")
    try:
        return SendRequest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        raise BadInput(f"{json_values.path('', first['loc'])}: {message}") from None


def schema() -> dict[str, Any]:
    """The request body's JSON Schema for the OpenAPI document."""
    document = SendRequest.model_json_schema(by_alias=True)
    document.pop("title", None)
    document["oneOf"] = [{"required": [name]} for name in _WHO]
    return document
