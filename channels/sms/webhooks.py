"""Twilio's signed callbacks: message status (`POST /webhooks/twilio/status`) and inbound SMS
(`POST /webhooks/twilio/inbound`).

Twilio signs the called URL plus the sorted form parameters with HMAC-SHA1 and the account's
auth token; the check uses Twilio's own library, over the raw request, before anything is read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from twilio.request_validator import RequestValidator

from app.db import DbSession
from app.errors import BadInput, Forbidden
from app.settings import get_settings
from app.webhooks.body import raw_body
from channels.settings import read
from channels.sms import feedback as twilio
from channels.sms.settings import SmsSettings, TwilioAccount

router = APIRouter(tags=["webhooks"])

T = TypeVar("T")
R = TypeVar("R")


def verify_twilio(
    account: TwilioAccount, url: str | None, raw: bytes, signature: str | None
) -> dict[str, str]:
    """The posted form parameters, once Twilio is proven to have signed this URL and them with
    our auth token; a 403 otherwise."""
    if not account.twilio_auth_token:
        raise Forbidden("Twilio webhooks are refused: TWILIO_AUTH_TOKEN is not set")
    if url is None:
        raise Forbidden(
            "Twilio webhooks are refused: CARILLON_PUBLIC_URL (the URL Twilio calls) is unset"
        )
    if not signature:
        raise Forbidden("unsigned: the X-Twilio-Signature header is missing")
    try:
        params = dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:  # Twilio posts UTF-8; nothing else can carry its signature
        params = None
    if params is None or not RequestValidator(account.twilio_auth_token).validate(
        url, params, signature
    ):
        raise Forbidden("forged: the Twilio signature does not match this request")
    return params


async def _twilio_params(request: Request) -> dict[str, str]:
    """The verified form parameters of a Twilio callback; Twilio signs the URL it called."""
    raw = await raw_body(request)
    settings = get_settings()
    url = None
    if settings.public_url:
        query = f"?{request.url.query}" if request.url.query else ""
        url = f"{settings.public_url.rstrip('/')}{request.url.path}{query}"
    return verify_twilio(read(TwilioAccount), url, raw, request.headers.get("X-Twilio-Signature"))


async def signed_callback(
    request: Request,
    session: Session,
    parse: Callable[[dict[str, str]], T],
    apply: Callable[[Session, T], R],
) -> tuple[T, R]:
    """A Twilio callback (SMS or WhatsApp): signature checked (403, nothing read), parsed (400,
    nothing changed), then applied in the request's transaction."""
    params = await _twilio_params(request)
    try:
        parsed = parse(params)
    except twilio.Malformed as exc:
        raise BadInput(str(exc)) from None
    return parsed, await run_in_threadpool(apply, session, parsed)


@router.post("/webhooks/twilio/status")
async def twilio_status(request: Request, session: DbSession) -> JSONResponse:
    _, recorded = await signed_callback(request, session, twilio.parse_status, twilio.apply_status)
    return JSONResponse({"recorded": recorded})


@router.post("/webhooks/twilio/inbound")
async def twilio_inbound(request: Request, session: DbSession) -> Response:
    inbound, _ = await signed_callback(request, session, twilio.parse_inbound, twilio.apply_inbound)
    return Response(twilio.reply(inbound, read(SmsSettings).sms_help_text), media_type="text/xml")
