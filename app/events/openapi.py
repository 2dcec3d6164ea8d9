"""The tracking API in the OpenAPI document: request bodies, answers and the write key.

The endpoints read their bodies raw (gzip, `writeKey` in the body, errors that name the field),
so FastAPI cannot infer what they take; this module describes it from the same `SegmentEvent`
model that validates it, so client generators and fuzzers see what the server accepts.
"""

from __future__ import annotations

import base64
import binascii
import copy
from typing import Any, Literal

from fastapi.openapi.models import HTTPBase as HTTPBaseModel
from fastapi.security.base import SecurityBase
from pydantic import BaseModel
from starlette.requests import Request

from app.errors import Unauthorized
from app.events import json_values
from app.events.event_time import EARLIEST, FUTURE_TOLERANCE
from app.events.schemas import MAX_BATCH_BYTES, MAX_EVENT_BYTES, MAX_STORED_STRING, SegmentEvent

KINDS = ("track", "identify", "page", "screen", "group", "alias")
# Fields a call type needs besides `userId` or `anonymousId` (SegmentEvent._required_by_type).
_REQUIRED = {"track": ("event",), "alias": ("previousId", "userId")}
_ID = {"type": "string", "minLength": 1, "maxLength": MAX_STORED_STRING}
_WRITE_KEY = {
    "type": "string",
    "description": "The source's write key, when not sent as basic auth.",
}
_LIMITS = (
    f"At most {MAX_EVENT_BYTES // 1024} KB of UTF-8 JSON per event, objects and arrays nested "
    f"at most {json_values.MAX_DEPTH} deep, numbers finite and within +/-2^63, no NUL "
    "character or lone surrogate in any string or key. Event times before "
    f"{EARLIEST.isoformat()} are refused; with `sentAt`, times are corrected by "
    f"`receivedAt - sentAt`; a time more than {FUTURE_TOLERANCE.seconds // 60} minutes after "
    "its arrival is taken as its arrival."
)


class Accepted(BaseModel):
    success: Literal[True] = True


class Failure(BaseModel):
    """Segment's error shape; `message` names the field at fault, e.g. `batch[3].userId`."""

    success: Literal[False] = False
    code: str
    message: str


def _failure(description: str) -> dict[str, Any]:
    return {"model": Failure, "description": description}


RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": Accepted, "description": "Stored (or already stored: same messageId)."},
    400: _failure("Malformed JSON or gzip, or an invalid event; nothing stored."),
    401: _failure("Missing, malformed or unknown write key."),
    413: _failure(
        f"Body larger than {MAX_EVENT_BYTES // 1024} KB ({MAX_BATCH_BYTES // 1024} KB for a "
        "batch) once inflated; refused before reading it when Content-Length says so."
    ),
    503: _failure("Database unavailable: resend later with the same messageIds."),
}


def _call(kind: str, in_batch: bool) -> dict[str, Any]:
    schema = copy.deepcopy(SegmentEvent.model_json_schema(by_alias=True))
    schema.pop("title", None)
    schema["description"] = f"A `{kind}` call. {_LIMITS}"
    properties = schema["properties"]
    properties["type"] = {"type": "string", "enum": [kind]}
    for name in _REQUIRED.get(kind, ()):
        properties[name] = _ID
    if not in_batch:
        properties["writeKey"] = _WRITE_KEY
    schema["required"] = (["type"] if in_batch else []) + list(_REQUIRED.get(kind, ()))
    schema["anyOf"] = [
        {"required": [name], "properties": {name: _ID}} for name in ("userId", "anonymousId")
    ]
    return schema


def _batch() -> dict[str, Any]:
    return {
        "type": "object",
        "description": (
            f"Up to {MAX_BATCH_BYTES // 1024} KB in all. `context` and `sentAt` apply to every "
            "event that has none of its own. Refused whole if one event is invalid."
        ),
        "required": ["batch"],
        "properties": {
            "batch": {
                "type": "array",
                "minItems": 1,
                "items": {"oneOf": [_call(kind, in_batch=True) for kind in KINDS]},
            },
            "context": {"type": "object", "additionalProperties": True},
            "sentAt": {"type": "string", "format": "date-time"},
            "writeKey": _WRITE_KEY,
        },
    }


def request_body(kind: str) -> dict[str, Any]:
    """`openapi_extra` for `/v1/{kind}` (`batch` included): JSON, optionally gzip."""
    schema = _batch() if kind == "batch" else _call(kind, in_batch=False)
    return {
        "requestBody": {
            "required": True,
            "description": "JSON; `Content-Encoding: gzip` is accepted.",
            "content": {"application/json": {"schema": schema}},
        }
    }


class BasicWriteKey(SecurityBase):
    """The write key as the basic-auth user name (password empty), as Segment SDKs send it.

    A security scheme, so the OpenAPI document says how to authenticate. It returns the key
    from the header, or None: `writeKey` in the body is the fallback the endpoint applies."""

    def __init__(self) -> None:
        self.model = HTTPBaseModel(
            scheme="basic", description="The write key as user name, password empty."
        )
        self.scheme_name = "writeKey"

    async def __call__(self, request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        if not auth.lower().startswith("basic "):
            return None
        try:
            return base64.b64decode(auth[6:], validate=True).decode().partition(":")[0] or None
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized("Authorization: malformed basic credentials") from None
