"""The ops dashboard at `/ops`: server-rendered HTML (Jinja2), no JavaScript build.

The page is complete as served. A few lines of vanilla JS re-fetch `/ops/panels` (the same
templates rendered as a fragment) every couple of seconds and swap it in, so there is one
rendering path (Jinja2, auto-escaped) rather than a second one in JS. The replay button posts
to the JSON API with the session cookie and the `X-Carillon-Ops` header.

Log in with the admin token: the form sets an HttpOnly, SameSite=Strict session cookie.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from app.ops import auth, table
from app.ops.api import summary

router = APIRouter(prefix="/ops", tags=["ops"], include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

REFRESH_MS = 2000
MAX_LOGIN_BODY = 4096


def _fmt_rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _fmt_money(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.4f}"


templates.env.filters["age"] = table.age
templates.env.filters["bucket"] = table.bucket
templates.env.filters["rate"] = _fmt_rate
templates.env.filters["money"] = _fmt_money


def _secure(request: Request) -> bool:
    proto = request.headers.get("x-forwarded-proto", request.url.scheme)
    return proto == "https"


def _login_page(request: Request, error: str | None, status: int) -> HTMLResponse:
    disabled = auth.configured_token() is None
    return templates.TemplateResponse(
        request,
        "login.html",
        {"error": auth.NOT_CONFIGURED if disabled else error, "disabled": disabled},
        status_code=503 if disabled else status,
    )


def _signed_in(request: Request) -> Response | None:
    """None when the caller may see the dashboard, else the page to show instead."""
    try:
        auth.authenticate(request)
    except auth.OpsAuthError as exc:
        if exc.status_code == 503:
            return _login_page(request, None, 503)
        return RedirectResponse("/ops/login", status_code=303)
    return None


def _context() -> dict[str, Any]:
    return {**summary(), "refresh_ms": REFRESH_MS}


@router.get("", response_class=HTMLResponse)
async def dashboard(request: Request) -> Response:
    refused = _signed_in(request)
    if refused is not None:
        return refused
    context = await run_in_threadpool(_context)
    return templates.TemplateResponse(request, "dashboard.html", context)


@router.get("/panels", response_class=HTMLResponse)
async def panels(request: Request) -> Response:
    auth.authenticate(request)  # a fragment: 401/503 as JSON, the page script reacts
    context = await run_in_threadpool(_context)
    return templates.TemplateResponse(request, "panels.html", context)


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request) -> Response:
    return _login_page(request, None, 200)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    if auth.configured_token() is None:
        return _login_page(request, None, 503)
    raw = await request.body()
    if len(raw) > MAX_LOGIN_BODY:
        return _login_page(request, "request too large", 400)
    try:
        form = parse_qs(raw.decode(), max_num_fields=5)
    except (UnicodeDecodeError, ValueError):
        return _login_page(request, "malformed form", 400)
    token = (form.get("token") or [""])[0].strip()
    if not token:
        return _login_page(request, "enter the admin token (CARILLON_ADMIN_TOKEN)", 400)
    if not auth.token_matches(token):
        return _login_page(request, "wrong admin token", 401)
    response = RedirectResponse("/ops", status_code=303)
    auth.set_session(response, token, _secure(request))
    return response


@router.post("/logout")
async def logout() -> Response:
    response = RedirectResponse("/ops/login", status_code=303)
    auth.clear_session(response)
    return response
