"""Twilio's signed WhatsApp callbacks: message status (`POST /webhooks/whatsapp/status`) and
inbound messages (`POST /webhooks/whatsapp/inbound`).

Signed as for SMS (HMAC-SHA1 of the called URL and the sorted form parameters with the
account's auth token) and checked the same way, before anything is read.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from twilio.twiml.messaging_response import MessagingResponse

from app.db import DbSession
from channels.sms import feedback as sms
from channels.sms.webhooks import signed_callback
from channels.whatsapp import feedback

router = APIRouter(tags=["webhooks"])


@router.post("/webhooks/whatsapp/status")
async def whatsapp_status(request: Request, session: DbSession) -> JSONResponse:
    _, recorded = await signed_callback(request, session, sms.parse_status, feedback.apply_status)
    return JSONResponse({"recorded": recorded})


@router.post("/webhooks/whatsapp/inbound")
async def whatsapp_inbound(request: Request, session: DbSession) -> Response:
    """An empty TwiML answer: Carillon sends nothing back in the conversation itself."""
    await signed_callback(request, session, feedback.parse_inbound, feedback.apply_inbound)
    return Response(str(MessagingResponse()), media_type="text/xml")
