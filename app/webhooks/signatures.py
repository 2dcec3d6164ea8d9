"""Proving a webhook came from its provider, before a byte of it is trusted.

SendGrid signs `timestamp + body` with ECDSA P-256 / SHA-256 (the key pair is the account's;
Carillon holds the public half); Twilio signs the called URL plus the sorted form parameters
with HMAC-SHA1 and the account's auth token. Both checks use the providers' own libraries.
"""

from __future__ import annotations

import binascii
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

from sendgrid.helpers.eventwebhook import EventWebhook
from twilio.request_validator import RequestValidator

from app import clock
from app.errors import Rejected
from app.settings import Settings
from app.webhooks.sendgrid_key import sendgrid_public_key

# How far a signed timestamp may be from now. SendGrid documents none; the signature covers the
# timestamp, so this bounds how long a captured request can be replayed (each event in it is
# also applied once only, by sg_event_id). 15 minutes is lenient with clock drift and the
# common 5-minute choice of Stripe and Standard Webhooks.
SENDGRID_MAX_AGE = timedelta(minutes=15)


def verify_sendgrid(
    settings: Settings, raw: bytes, signature: str | None, timestamp: str | None
) -> str:
    """The body as text, once SendGrid is proven to have signed exactly it at this timestamp;
    a 403 otherwise."""
    if not settings.sendgrid_webhook_public_key:
        raise Rejected(403, "SendGrid webhooks are refused: no verification key is configured")
    if not signature or not timestamp:
        raise Rejected(403, "unsigned: the SendGrid signature headers are missing")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise Rejected(403, "forged: the SendGrid timestamp is not Unix seconds")
    key = sendgrid_public_key(settings.sendgrid_webhook_public_key)
    try:
        body = raw.decode("utf-8")  # SendGrid signs UTF-8 JSON; nothing else can match
        valid = EventWebhook().verify_signature(body, signature, timestamp, key)
    except (UnicodeDecodeError, ValueError, binascii.Error):  # not UTF-8, base64 or DER
        valid = False
    if not valid:
        raise Rejected(403, "forged: the SendGrid signature does not match the body")
    signed_at = datetime.fromtimestamp(int(timestamp), UTC)  # a valid signature: digits only
    if abs(clock.now() - signed_at) > SENDGRID_MAX_AGE:
        raise Rejected(
            403,
            f"stale: signed at {signed_at.isoformat()}, more than "
            f"{SENDGRID_MAX_AGE.seconds // 60} minutes from now; a replayed request is refused",
        )
    return body


def verify_twilio(
    settings: Settings, url: str | None, raw: bytes, signature: str | None
) -> dict[str, str]:
    """The posted form parameters, once Twilio is proven to have signed this URL and them with
    our auth token; a 403 otherwise."""
    if not settings.twilio_auth_token:
        raise Rejected(403, "Twilio webhooks are refused: TWILIO_AUTH_TOKEN is not set")
    if url is None:
        raise Rejected(
            403, "Twilio webhooks are refused: CARILLON_PUBLIC_URL (the URL Twilio calls) is unset"
        )
    if not signature:
        raise Rejected(403, "unsigned: the X-Twilio-Signature header is missing")
    try:
        params = dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:  # Twilio posts UTF-8; nothing else can carry its signature
        params = None
    if params is None or not RequestValidator(settings.twilio_auth_token).validate(
        url, params, signature
    ):
        raise Rejected(403, "forged: the Twilio signature does not match this request")
    return params
