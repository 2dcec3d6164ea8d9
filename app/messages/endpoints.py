"""`POST /v1/messages`: a transactional message (a receipt, a password reset) from a shop's
backend to one person, with a send key (app/messages/access.py).

    202  {"success": true, "deliveryId": 42, "profileId": "…", "channel": "email"}
         queued; the same answer again for the same `Idempotency-Key` and request
    400  malformed JSON or an invalid field      403  a write or read key
    404  nobody is known by that userId, e-mail or phone
    409  the person cannot get it: no consent (the reason is given), no address
    422  unknown message, content the channel cannot send, a template that fails with this
         data, or an `Idempotency-Key` reused with another request
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.responses import JSONResponse
from fastapi.security.base import SecurityBase
from starlette.concurrency import run_in_threadpool

from app.db import DbSession
from app.events.body import read_json
from app.events.openapi import Failure
from app.messages import request as send_request
from app.messages import service
from app.messages.access import sender

router = APIRouter(prefix="/v1", tags=["messages"])


class SendKey(SecurityBase):
    """A send key as a bearer token; a security scheme, so the OpenAPI document says how to
    authenticate."""

    def __init__(self) -> None:
        self.model = HTTPBearerModel(description="A send key (CARILLON_SEND_KEYS).")
        self.scheme_name = "sendKey"

    async def __call__(self, request: Request) -> str:
        return sender(request)


def _failure(description: str) -> dict[str, Any]:
    return {"model": Failure, "description": description}


RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "Queued; a request repeated with its Idempotency-Key gets the same "
        "answer (with `Idempotent-Replayed: true`).",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["success", "deliveryId", "profileId", "channel"],
                    "properties": {
                        "success": {"type": "boolean", "enum": [True]},
                        "deliveryId": {"type": "integer"},
                        "profileId": {"type": "string"},
                        "channel": {"type": "string"},
                    },
                }
            }
        },
    },
    400: _failure("Malformed JSON or an invalid field; nothing queued."),
    401: _failure("Missing or wrong send key."),
    403: _failure("A write key or a read key: sending needs a send key."),
    404: _failure("Nobody is known by that userId, e-mail or phone."),
    409: _failure("The person cannot get it: no consent (with the reason) or no address."),
    410: _failure("That person's data was erased."),
    413: _failure("Body larger than 32 KB."),
    422: _failure(
        "Unknown message, content the channel cannot send, a template that fails with this "
        "data, or an Idempotency-Key reused with another request; nothing queued."
    ),
    429: _failure("Too many wrong keys from this address."),
    503: _failure("Sending is not configured (no send key), or the database is unavailable."),
}

BODY = {
    "requestBody": {
        "required": True,
        "description": "JSON; `Content-Encoding: gzip` is accepted.",
        "content": {"application/json": {"schema": send_request.schema()}},
    }
}

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Any string up to 255 characters (a UUID, the order number): the same "
        "key with the same request is the same delivery; with another request, 422.",
    ),
]


@router.post("/messages", status_code=202, responses=RESPONSES, openapi_extra=BODY)
async def send(
    request: Request,
    key_name: Annotated[str, Depends(SendKey())],
    session: DbSession,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    raw = await read_json(request, send_request.MAX_REQUEST_BYTES)
    parsed = send_request.parse(raw)
    keyed = service.idempotency(key_name, idempotency_key, raw)
    answer = await run_in_threadpool(service.send, session, parsed, key_name, keyed)
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else None
    return JSONResponse(answer.as_dict(), status_code=202, headers=headers)
