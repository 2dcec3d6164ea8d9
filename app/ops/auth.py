"""The one admin check for every ops endpoint: `Authorization: Bearer <CARILLON_ADMIN_TOKEN>`,
or, for the browser dashboard, a session cookie the login form sets.

Never open by default: with no token configured every ops endpoint answers 503 and says how
to enable it. Tokens are compared with `hmac.compare_digest` (constant time), and an address
that sends five wrong ones in a minute is answered 429 until the minute has passed. The cookie
holds an expiry and a signature (CARILLON_SECRET_KEY) over it and a digest of the token, not the
token itself: it cannot be turned back into the token, and changing the token logs every browser
out. It is HttpOnly and SameSite=Strict; a browser request that changes something (replay) must
also carry the `X-Carillon-Ops` header, which a cross-site form cannot set, and the log-out form
carries a token derived from the session cookie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Literal

from fastapi import Request, Response

from app import signing
from app.errors import Forbidden, TooManyRequests, Unauthorized, Unavailable
from app.ops import throttle
from app.settings import get_settings

COOKIE = "carillon_ops"
SESSION_SECONDS = 12 * 3600
CSRF_HEADER = "X-Carillon-Ops"

NOT_CONFIGURED = (
    "ops endpoints are disabled: set CARILLON_ADMIN_TOKEN to a long random secret "
    "and send it as `Authorization: Bearer <token>`"
)

Via = Literal["bearer", "cookie"]

_CHALLENGE = "Bearer"


def configured_token() -> str | None:
    token = get_settings().admin_token
    return token or None


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def check_token(request: Request, given: str) -> bool:
    """Whether `given` is the admin token; a wrong one counts against the caller's address,
    and a caller over the limit is refused (429) before its token is even compared."""
    client = client_address(request)
    wait = throttle.retry_after(client)
    if wait is not None:
        raise TooManyRequests(
            f"too many wrong admin tokens from {client}: try again in {wait} s", wait
        )
    token = configured_token()
    if token is not None and hmac.compare_digest(given.encode(), token.encode()):
        return True
    throttle.failed(client)
    return False


def _signature(token: str, expires: int, purpose: bytes = b"ops-session") -> str:
    # Bound to the token: a new token invalidates every cookie signed for the old one.
    bound = f"{expires}:{hashlib.sha256(token.encode()).hexdigest()}".encode()
    mac = signing.sign(get_settings(), purpose, bound)
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def session_cookie(token: str, now: float | None = None) -> str:
    expires = int((now if now is not None else time.time()) + SESSION_SECONDS)
    return f"{expires}.{_signature(token, expires)}"


def cookie_valid(value: str, now: float | None = None) -> bool:
    token = configured_token()
    expires_text, _, signature = value.partition(".")
    if token is None or not expires_text.isdigit():
        return False
    expires = int(expires_text)
    if expires < (now if now is not None else time.time()):
        return False
    return hmac.compare_digest(signature.encode(), _signature(token, expires).encode())


def set_session(response: Response, token: str, secure: bool) -> None:
    response.set_cookie(
        COOKIE,
        session_cookie(token),
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/ops",
    )


def clear_session(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/ops", httponly=True, samesite="strict")


def authenticate(request: Request) -> Via:
    """Who may call an ops endpoint; raises Unavailable (no token set), Unauthorized (missing
    or wrong), Forbidden (a browser change without the header) or TooManyRequests."""
    if configured_token() is None:
        raise Unavailable(NOT_CONFIGURED)
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if header:
        if scheme.lower() != "bearer" or not given.strip():
            raise Unauthorized(
                "Authorization: expected `Bearer <CARILLON_ADMIN_TOKEN>`", _CHALLENGE
            )
        if not check_token(request, given.strip()):
            raise Unauthorized("wrong admin token", _CHALLENGE)
        return "bearer"
    cookie = request.cookies.get(COOKIE)
    if cookie and cookie_valid(cookie):
        if request.method not in ("GET", "HEAD") and request.headers.get(CSRF_HEADER) != "1":
            raise Forbidden(f"browser requests that change something need {CSRF_HEADER}")
        return "cookie"
    raise Unauthorized(
        "missing admin token: send `Authorization: Bearer <CARILLON_ADMIN_TOKEN>`", _CHALLENGE
    )


def form_token(request: Request) -> str:
    """What a dashboard form must send back: derived from the session cookie, which another
    site can neither read nor make the browser reveal."""
    token = configured_token()
    cookie = request.cookies.get(COOKIE, "")
    expires = cookie.partition(".")[0]
    if token is None or not expires.isdigit():
        return ""
    return _signature(token, int(expires), b"ops-form")


def form_token_valid(request: Request, given: str) -> bool:
    expected = form_token(request)
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def require_admin(request: Request) -> Via:
    """FastAPI dependency for every ops endpoint."""
    return authenticate(request)
