"""SendGrid's signed Event Webhook: `POST /webhooks/sendgrid`.

SendGrid signs `timestamp + body` with ECDSA P-256 / SHA-256 (the key pair is the account's;
Carillon holds the public half). The signature is checked over the raw request first (403,
nothing read), then the body is parsed (400, nothing changed), then applied in the request's
transaction.
"""

from __future__ import annotations

import binascii
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sendgrid.helpers.eventwebhook import EventWebhook
from starlette.concurrency import run_in_threadpool

from app import clock
from app.db import DbSession
from app.errors import BadInput, Forbidden
from app.webhooks.body import raw_body
from channels.email import feedback as sendgrid
from channels.email.keys import sendgrid_public_key
from channels.email.settings import SendGridSettings
from channels.settings import read

router = APIRouter(tags=["webhooks"])

SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


# How far a signed timestamp may be from now. SendGrid documents none; the signature covers the
# timestamp, so this bounds how long a captured request can be replayed (each event in it is
# also applied once only, by sg_event_id). 15 minutes is lenient with clock drift and the
# common 5-minute choice of Stripe and Standard Webhooks.
SENDGRID_MAX_AGE = timedelta(minutes=15)


def verify_sendgrid(
    settings: SendGridSettings, raw: bytes, signature: str | None, timestamp: str | None
) -> str:
    """The body as text, once SendGrid is proven to have signed exactly it at this timestamp;
    a 403 otherwise."""
    if not settings.sendgrid_webhook_public_key:
        raise Forbidden("SendGrid webhooks are refused: no verification key is configured")
    if not signature or not timestamp:
        raise Forbidden("unsigned: the SendGrid signature headers are missing")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise Forbidden("forged: the SendGrid timestamp is not Unix seconds")
    key = sendgrid_public_key(settings.sendgrid_webhook_public_key)
    try:
        body = raw.decode("utf-8")  # SendGrid signs UTF-8 JSON; nothing else can match
        valid = EventWebhook().verify_signature(body, signature, timestamp, key)
    except (UnicodeDecodeError, ValueError, binascii.Error):  # not UTF-8, base64 or DER
        valid = False
    if not valid:
        raise Forbidden("forged: the SendGrid signature does not match the body")
    signed_at = datetime.fromtimestamp(int(timestamp), UTC)  # a valid signature: digits only
    if abs(clock.now() - signed_at) > SENDGRID_MAX_AGE:
        raise Forbidden(
            f"stale: signed at {signed_at.isoformat()}, more than "
            f"{SENDGRID_MAX_AGE.seconds // 60} minutes from now; a replayed request is refused",
        )
    return body


@router.post("/webhooks/sendgrid")
async def sendgrid_events(request: Request, session: DbSession) -> JSONResponse:
    raw = await raw_body(request)
    body = verify_sendgrid(
        read(SendGridSettings), raw, request.headers.get(SIGNATURE), request.headers.get(TIMESTAMP)
    )
    try:
        events = sendgrid.parse(body)
    except sendgrid.Malformed as exc:
        raise BadInput(str(exc)) from None
    tally = await run_in_threadpool(sendgrid.apply, session, events)
    return JSONResponse(
        {"recorded": tally.recorded, "replayed": tally.replayed, "ignored": tally.ignored}
    )
