"""Reading SendGrid's Event Webhook verification key.

Kept free of any other Carillon import: the settings check the key at start-up, so a pasted key
cut short fails then and not on the first webhook, and the settings sit below everything else.
"""

from __future__ import annotations

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from sendgrid.helpers.eventwebhook import EventWebhook


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
