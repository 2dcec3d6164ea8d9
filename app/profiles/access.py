"""Who may read or erase people's data over HTTP: `Authorization: Bearer <token>` with the
admin token (everything) or a read key from CARILLON_READ_KEYS (show and export, not erase).

Never a write key: write keys ship inside web pages and mobile apps, so anybody can read
them; a request that presents one is told so (403) rather than just refused. Wrong tokens
count against the caller's address with the ops login's throttle, so keys cannot be guessed
at network speed either. Closed by default: with neither an admin token nor a read key set,
the profile API answers 503 and says how to open it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass

from fastapi import Request

from app.errors import Forbidden, Unauthorized, Unavailable
from app.ops import auth
from app.settings import get_settings

NOT_CONFIGURED = (
    "the profile API is disabled: set CARILLON_ADMIN_TOKEN, or CARILLON_READ_KEYS for "
    "read-only access, and send it as `Authorization: Bearer <token>`"
)
_WRITE_KEY = (
    "a write key sends events and cannot read or erase people's data: use the admin token "
    "or a read key (CARILLON_READ_KEYS) as `Authorization: Bearer <token>`"
)


@dataclass(frozen=True)
class Caller:
    admin: bool
    # How the audit trail names the credential, never the credential itself.
    name: str


def basic_user(credentials: str) -> str:
    try:
        decoded = base64.b64decode(credentials, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ""
    return decoded.partition(":")[0]


def _is_write_key(given: str) -> bool:
    return any(
        hmac.compare_digest(given.encode(), key.encode())
        for key in get_settings().write_key_sources()
    )


def _read_key(given: str) -> str | None:
    for key, name in get_settings().read_key_names().items():
        if hmac.compare_digest(given.encode(), key.encode()):
            return name
    return None


def caller(request: Request) -> Caller:
    """FastAPI dependency of every profile endpoint: who is asking, or 503, 401, 403, 429."""
    settings = get_settings()
    if auth.configured_token() is None and not settings.read_key_names():
        raise Unavailable(NOT_CONFIGURED)
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    given = given.strip()
    if scheme.lower() == "basic" and _is_write_key(basic_user(given)):
        raise Forbidden(_WRITE_KEY)
    if scheme.lower() != "bearer" or not given:
        raise Unauthorized("missing token: send `Authorization: Bearer <token>`", "Bearer")
    if _is_write_key(given):
        raise Forbidden(_WRITE_KEY)
    name = _read_key(given)
    if name is not None:
        return Caller(admin=False, name=f"read key {name}")
    if auth.check_token(request, given):  # throttled guesses: TooManyRequests
        return Caller(admin=True, name="admin token")
    raise Unauthorized("wrong token", "Bearer")


def admin(request: Request) -> Caller:
    """Erasure is the admin's alone: a read key is for looking, not deleting."""
    who = caller(request)
    if not who.admin:
        raise Forbidden("erasing a person needs the admin token; a read key only reads")
    return who
