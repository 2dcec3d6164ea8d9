"""Standard Webhooks signatures (standardwebhooks.com, version 1.0.0, symmetric scheme `v1`).

The signed content is `{webhook-id}.{webhook-timestamp}.{body}`: the receiver proves that the
body, its id (the idempotency key) and the attempt's time all come from the holder of the
secret, and refuses a replay older than its tolerance. The id is the delivery's, the same on
every retry; the timestamp is the attempt's, so a retry is signed anew.

Secrets are shown to people as `whsec_` and the base64 of 24 to 64 random bytes (the
specification's range). Several secrets for one endpoint give several space-separated
signatures, so a receiver can rotate its secret without missing a message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable

SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES, MAX_SECRET_BYTES = 24, 64
VERSION = "v1"


def parse_secret(text: str) -> bytes:
    """The key of a `whsec_` secret. The ValueError never quotes the secret itself: it ends
    up in logs and on a terminal."""
    if not text.startswith(SECRET_PREFIX):
        raise ValueError(f"a secret must start with {SECRET_PREFIX}")
    encoded = text[len(SECRET_PREFIX) :]
    try:  # padding is optional, as in the reference library
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"the text after {SECRET_PREFIX} is not base64") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(
            f"a secret must hold {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, "
            f"this one holds {len(key)}"
        )
    return key


def signature(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return f"{VERSION},{base64.b64encode(digest).decode('ascii')}"


def signature_header(keys: Iterable[bytes], webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one signature per key, space-separated."""
    return " ".join(signature(key, webhook_id, timestamp, body) for key in keys)
