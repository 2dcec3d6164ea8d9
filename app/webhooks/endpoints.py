"""The webhook routes. Each verifies the provider's signature over the raw request first
(403, nothing read), then parses (400, nothing changed), then applies in one transaction."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from app.db import session_scope
from app.errors import Rejected
from app.settings import get_settings
from app.webhooks import sendgrid, signatures, twilio, unsubscribe_page
from app.webhooks.twilio import Inbound, StatusCallback

log = logging.getLogger(__name__)

router = APIRouter(tags=["webhooks"])
router.include_router(unsubscribe_page.router)

# SendGrid posts batches well under this; anything bigger is not SendGrid.
MAX_WEBHOOK_BYTES = 5 * 1024 * 1024
SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


async def _raw(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_WEBHOOK_BYTES:
        raise Rejected(413, f"body: larger than {MAX_WEBHOOK_BYTES // 1024 // 1024} MB")
    raw = await request.body()
    if len(raw) > MAX_WEBHOOK_BYTES:
        raise Rejected(413, f"body: larger than {MAX_WEBHOOK_BYTES // 1024 // 1024} MB")
    return raw


def _apply_sendgrid(events: list[sendgrid.FeedbackEvent]) -> sendgrid.Tally:
    with session_scope() as session:
        return sendgrid.apply(session, events)


@router.post("/webhooks/sendgrid")
async def sendgrid_events(request: Request) -> JSONResponse:
    raw = await _raw(request)
    body = signatures.verify_sendgrid(
        get_settings(), raw, request.headers.get(SIGNATURE), request.headers.get(TIMESTAMP)
    )
    try:
        events = sendgrid.parse(body)
    except sendgrid.Malformed as exc:
        raise Rejected(400, str(exc)) from None
    tally = await run_in_threadpool(_apply_sendgrid, events)
    return JSONResponse(
        {"recorded": tally.recorded, "replayed": tally.replayed, "ignored": tally.ignored}
    )


async def _twilio_params(request: Request) -> dict[str, str]:
    """The verified form parameters of a Twilio callback; Twilio signs the URL it called."""
    raw = await _raw(request)
    settings = get_settings()
    url = None
    if settings.public_url:
        query = f"?{request.url.query}" if request.url.query else ""
        url = f"{settings.public_url.rstrip('/')}{request.url.path}{query}"
    return signatures.verify_twilio(settings, url, raw, request.headers.get("X-Twilio-Signature"))


def _apply_status(callback: StatusCallback) -> bool:
    with session_scope() as session:
        return twilio.apply_status(session, callback)


def _apply_inbound(inbound: Inbound) -> bool:
    with session_scope() as session:
        return twilio.apply_inbound(session, inbound)


@router.post("/webhooks/twilio/status")
async def twilio_status(request: Request) -> JSONResponse:
    params = await _twilio_params(request)
    try:
        callback = twilio.parse_status(params)
    except twilio.Malformed as exc:
        raise Rejected(400, str(exc)) from None
    recorded = await run_in_threadpool(_apply_status, callback)
    return JSONResponse({"recorded": recorded})


@router.post("/webhooks/twilio/inbound")
async def twilio_inbound(request: Request) -> Response:
    params = await _twilio_params(request)
    try:
        inbound = twilio.parse_inbound(params)
    except twilio.Malformed as exc:
        raise Rejected(400, str(exc)) from None
    await run_in_threadpool(_apply_inbound, inbound)
    return Response(twilio.reply(inbound, get_settings().sms_help_text), media_type="text/xml")
