"""Unsubscribe links: a token that proves Carillon wrote this link for this person.

The token carries the delivery id and the profile id, signed with the secret key (see
`app.signing`), so the link needs no table and the e-mail adapter can make it without the
database.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass

from app.settings import Settings
from app.signing import sign

# What `{{ unsubscribe_url }}` renders to when the message is planned (before the delivery has
# an id); the e-mail adapter puts the real link in its place.
PLACEHOLDER = "%carillon_unsubscribe_url%"
PATH = "/unsubscribe"
# Where links point while CARILLON_PUBLIC_URL is unset: `carillon serve` on this machine.
EMBEDDED_URL = "http://127.0.0.1:8000"
_PURPOSE = b"carillon unsubscribe link v1:"


class InvalidToken(ValueError):
    """Not a token at all (truncated, mangled by a mail client): 400."""


class ForgedToken(InvalidToken):
    """Well-formed but not signed with our key: 403."""


@dataclass(frozen=True)
class Claim:
    delivery_id: int
    profile_id: str


def _mac(settings: Settings, payload: bytes) -> bytes:
    return sign(settings, _PURPOSE, payload)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(settings: Settings, delivery_id: int | str, profile_id: str) -> str:
    payload = f"{delivery_id}:{profile_id}".encode()
    return f"{_b64(payload)}.{_b64(_mac(settings, payload))}"


def read_token(settings: Settings, token: str) -> Claim:
    """The claim inside a token, or InvalidToken / ForgedToken."""
    encoded, dot, signature = token.partition(".")
    try:
        payload, mac = _unb64(encoded), _unb64(signature)
        delivery, colon, profile_id = payload.decode().partition(":")
        delivery_id = int(delivery)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidToken("this unsubscribe link is damaged") from None
    if not dot or not colon or not profile_id or delivery_id <= 0:
        raise InvalidToken("this unsubscribe link is damaged")
    if not hmac.compare_digest(mac, _mac(settings, payload)):
        raise ForgedToken("this unsubscribe link was not issued by us")
    return Claim(delivery_id, profile_id)


def link(settings: Settings, delivery_id: int | str, profile_id: str) -> str:
    base = (settings.public_url or EMBEDDED_URL).rstrip("/")
    return f"{base}{PATH}/{make_token(settings, delivery_id, profile_id)}"
