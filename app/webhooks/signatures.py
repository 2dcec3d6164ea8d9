"""Proving a webhook came from its provider, before a byte of it is trusted.

SendGrid signs `timestamp + body` with ECDSA P-256 / SHA-256 (the key pair is the account's;
Carillon holds the public half); Twilio signs the called URL plus the sorted form parameters
with HMAC-SHA1 and the account's auth token. Both checks use the providers' own libraries.
"""

from __future__ import annotations

import binascii
from urllib.parse import parse_qsl

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from sendgrid.helpers.eventwebhook import EventWebhook
from twilio.request_validator import RequestValidator

from app.events.endpoints import Rejected
from app.settings import Settings


def sendgrid_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """The key as SendGrid's settings page shows it (base64 DER), PEM armour and line breaks
    tolerated, since people paste it either way."""
    lines = [line for line in text.strip().splitlines() if not line.startswith("-----")]
    der_base64 = "".join("".join(lines).split())
    try:
        key = EventWebhook(der_base64).public_key
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ValueError(
            f"CARILLON_SENDGRID_WEBHOOK_PUBLIC_KEY is not a readable public key: {exc}"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("CARILLON_SENDGRID_WEBHOOK_PUBLIC_KEY is not an ECDSA P-256 public key")
    return key


def verify_sendgrid(
    settings: Settings, raw: bytes, signature: str | None, timestamp: str | None
) -> str:
    """The body as text, once SendGrid is proven to have signed exactly it at this timestamp;
    a 403 otherwise."""
    if not settings.sendgrid_webhook_public_key:
        raise Rejected(403, "SendGrid webhooks are refused: no verification key is configured")
    if not signature or not timestamp:
        raise Rejected(403, "unsigned: the SendGrid signature headers are missing")
    key = sendgrid_public_key(settings.sendgrid_webhook_public_key)
    try:
        body = raw.decode("utf-8")  # SendGrid signs UTF-8 JSON; nothing else can match
        valid = EventWebhook().verify_signature(body, signature, timestamp, key)
    except (UnicodeDecodeError, ValueError, binascii.Error):  # not UTF-8, base64 or DER
        valid = False
    if not valid:
        raise Rejected(403, "forged: the SendGrid signature does not match the body")
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
