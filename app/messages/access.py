"""Who may send: `Authorization: Bearer <key>` with a key of CARILLON_SEND_KEYS.

A send key reaches anybody's inbox, so it stays on the shop's servers: never a write key
(those ship inside web pages and apps, and anybody can read them) and never a read key (a
support tool reads people, it does not message them); a request presenting one is told so
(403) rather than merely refused. Wrong keys count against the caller's address with the ops
login's throttle. Closed by default: with no send key set, the endpoint answers 503 and says
how to open it.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from fastapi import Request

from app.errors import Forbidden, TooManyRequests, Unauthorized, Unavailable
from app.ops import auth, throttle
from app.profiles.access import basic_user
from app.settings import get_settings

NOT_CONFIGURED = (
    "the transactional send API is disabled: set CARILLON_SEND_KEYS and send a key as "
    "`Authorization: Bearer <key>`"
)
_WRITE_KEY = (
    "a write key sends events and is public (it ships inside web pages and apps): sending a "
    "message needs a send key (CARILLON_SEND_KEYS) as `Authorization: Bearer <key>`"
)
_READ_KEY = (
    "a read key reads people's data and cannot message them: sending needs a send key "
    "(CARILLON_SEND_KEYS) as `Authorization: Bearer <key>`"
)


def _matches(given: str, keys: Iterable[str]) -> bool:
    return any(hmac.compare_digest(given.encode(), key.encode()) for key in keys)


def sender(request: Request) -> str:
    """FastAPI dependency of the send endpoint: the send key's name, or 403, 503, 401, 429."""
    settings = get_settings()
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    given = given.strip()
    if scheme.lower() == "basic" and _matches(basic_user(given), settings.write_key_sources()):
        raise Forbidden(_WRITE_KEY)
    if scheme.lower() == "bearer" and _matches(given, settings.write_key_sources()):
        raise Forbidden(_WRITE_KEY)
    if scheme.lower() == "bearer" and _matches(given, settings.read_key_names()):
        raise Forbidden(_READ_KEY)
    keys = settings.send_key_names()
    if not keys:
        raise Unavailable(NOT_CONFIGURED)
    if scheme.lower() != "bearer" or not given:
        raise Unauthorized("missing send key: send `Authorization: Bearer <key>`", "Bearer")
    for key, name in keys.items():
        if _matches(given, (key,)):
            return name
    client = auth.client_address(request)
    wait = throttle.retry_after(client)
    if wait is not None:
        raise TooManyRequests(f"too many wrong keys from {client}: try again in {wait} s", wait)
    throttle.failed(client)
    raise Unauthorized("wrong send key", "Bearer")
