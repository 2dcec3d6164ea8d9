"""Twilio's signed WhatsApp callbacks: message status (`POST /webhooks/whatsapp/status`) and
inbound messages (`POST /webhooks/whatsapp/inbound`).

Signed as for SMS (HMAC-SHA1 of the called URL and the sorted form parameters with the
account's auth token) and checked the same way, before anything is read.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from twilio.twiml.messaging_response import MessagingResponse

from app.db import session_scope
from app.errors import Rejected
from channels.sms import feedback as sms
from channels.sms.feedback import StatusCallback
from channels.sms.webhooks import _twilio_params
from channels.whatsapp import feedback
from channels.whatsapp.feedback import Inbound

router = APIRouter(tags=["webhooks"])


def _apply_status(callback: StatusCallback) -> bool:
    with session_scope() as session:
        return feedback.apply_status(session, callback)


def _apply_inbound(inbound: Inbound) -> bool:
    with session_scope() as session:
        return feedback.apply_inbound(session, inbound)


@router.post("/webhooks/whatsapp/status")
async def whatsapp_status(request: Request) -> JSONResponse:
    params = await _twilio_params(request)
    try:
        callback = sms.parse_status(params)
    except sms.Malformed as exc:
        raise Rejected(400, str(exc)) from None
    recorded = await run_in_threadpool(_apply_status, callback)
    return JSONResponse({"recorded": recorded})


@router.post("/webhooks/whatsapp/inbound")
async def whatsapp_inbound(request: Request) -> Response:
    """An empty TwiML answer: Carillon sends nothing back in the conversation itself."""
    params = await _twilio_params(request)
    try:
        inbound = feedback.parse_inbound(params)
    except sms.Malformed as exc:
        raise Rejected(400, str(exc)) from None
    await run_in_threadpool(_apply_inbound, inbound)
    return Response(str(MessagingResponse()), media_type="text/xml")
