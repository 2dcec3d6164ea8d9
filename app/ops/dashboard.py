"""The ops dashboard at `/ops`: server-rendered HTML (Jinja2), no JavaScript build.

The page is complete as served. A few lines of vanilla JS re-fetch `/ops/panels` (the same
templates rendered as a fragment) every couple of seconds and swap it in, so there is one
rendering path (Jinja2, auto-escaped) rather than a second one in JS. The replay button posts
to the JSON API with the session cookie and the `X-Carillon-Ops` header.

Log in with the admin token: the form sets an HttpOnly, SameSite=Strict session cookie.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app import clock
from app.analytics import funnel, report, roi
from app.db import DbSession
from app.errors import CarillonError, TooManyRequests, Unavailable
from app.ops import auth, charts, sends, table
from app.ops.api import summary
from app.ops.recent import recent_deliveries
from app.profiles import requests
from app.settings import get_settings

router = APIRouter(prefix="/ops", tags=["ops"], include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

REFRESH_MS = 2000
MAX_LOGIN_BODY = 4096


def _fmt_rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _fmt_revenue(per_currency: Mapping[str, float]) -> str:
    return ", ".join(f"{v:,.2f} {c}" for c, v in sorted(per_currency.items())) or "–"


def _fmt_money(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.4f}"


templates.env.filters["age"] = table.age
templates.env.filters["bucket"] = table.bucket
templates.env.filters["rate"] = _fmt_rate
templates.env.filters["money"] = _fmt_money
templates.env.filters["revenue"] = _fmt_revenue
for _name in ("percent", "change", "points", "p_value", "amount"):
    # Filters, and functions for the template's interval macro.
    templates.env.filters[_name] = templates.env.globals[_name] = getattr(report, _name)


def _secure(request: Request) -> bool:
    proto = request.headers.get("x-forwarded-proto", request.url.scheme)
    return proto == "https"


def _login_page(
    request: Request, error: str | None, status: int, headers: Mapping[str, str] | None = None
) -> HTMLResponse:
    disabled = auth.configured_token() is None
    return templates.TemplateResponse(
        request,
        "login.html",
        {"error": auth.NOT_CONFIGURED if disabled else error, "disabled": disabled},
        status_code=503 if disabled else status,
        headers=headers,
    )


def _cross_site(request: Request) -> bool:
    """A form posted from another site: browsers say so in Sec-Fetch-Site, or in an Origin
    that is not this host."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        return True
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin == "null"
    return urlsplit(origin).netloc != request.headers.get("host")


def _signed_in(request: Request) -> Response | None:
    """None when the caller may see the dashboard, else the page to show instead."""
    try:
        auth.authenticate(request)
    except Unavailable:
        return _login_page(request, None, 503)
    except CarillonError:
        return RedirectResponse("/ops/login", status_code=303)
    return None


def _charts(session: Session, found: list[report.ExperimentReport]) -> dict[str, Any]:
    """Drawn from the functions `carillon report` prints, so both show the same figures."""
    try:
        money = charts.roi(roi.channels(session, get_settings()))
    except roi.CurrencyMismatch as exc:
        money = charts.empty(f"No ROI: {exc}.")
    journeys = [f for f in funnel.journeys(session) if f.arm == funnel.ALL_ARMS]
    return {
        "funnels": {f.journey: charts.funnel(f) for f in journeys},
        "arms": {x.journey_id: charts.arms(x) for x in found},
        "roi": money,
        "sends": charts.sends(sends.per_minute(session, clock.now())),
    }


def _context(session: Session) -> dict[str, Any]:
    found = report.results(session)
    return {
        **summary(session, found=found),
        "charts": _charts(session, found),
        "recent": recent_deliveries(session),
        "refresh_ms": REFRESH_MS,
    }


@router.get("", response_class=HTMLResponse)
def dashboard(request: Request, session: DbSession) -> Response:
    refused = _signed_in(request)
    if refused is not None:
        return refused
    context = _context(session)
    context["form_token"] = auth.form_token(request)
    return templates.TemplateResponse(request, "dashboard.html", context)


@router.get("/")
async def dashboard_slash() -> Response:
    # A relative redirect: the one Starlette makes for a trailing slash is absolute and built
    # from the Host header, which a client chooses.
    return RedirectResponse("/ops", status_code=307)


@router.get("/person", response_class=HTMLResponse)
async def person_page(request: Request, id: str = "") -> Response:  # noqa: A002 (the form field)
    """The search box's answer: one person's traits, consent, identities and history."""
    refused = _signed_in(request)
    if refused is not None:
        return refused
    context: dict[str, Any] = {"asked": id, "person": None, "error": None}
    status = 200
    try:
        context["person"] = await run_in_threadpool(requests.show, id)
    except requests.InvalidReference as exc:
        context["error"], status = str(exc), 400
    except requests.UnknownPerson as exc:
        context["error"], status = str(exc), 404
    except requests.Erased as exc:
        context["error"], status = str(exc), 410
    context["form_token"] = auth.form_token(request)
    return templates.TemplateResponse(request, "person.html", context, status_code=status)


@router.get("/panels", response_class=HTMLResponse)
def panels(request: Request, session: DbSession) -> Response:
    auth.authenticate(request)  # a fragment: 401/503 as JSON, the page script reacts
    return templates.TemplateResponse(request, "panels.html", _context(session))


async def _form(request: Request) -> dict[str, str] | None:
    """A small url-encoded form's first value per field, or None if it is not one."""
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_LOGIN_BODY:
            return None
    try:
        fields = parse_qs(raw.decode(), max_num_fields=5)
    except (UnicodeDecodeError, ValueError):
        return None
    return {name: values[0] for name, values in fields.items()}


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request) -> Response:
    return _login_page(request, None, 200)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    if auth.configured_token() is None:
        return _login_page(request, None, 503)
    if _cross_site(request):
        return _login_page(request, "log in from this dashboard's own page", 403)
    form = await _form(request)
    if form is None:
        return _login_page(request, "malformed or oversized form", 400)
    token = form.get("token", "").strip()
    if not token:
        return _login_page(request, "enter the admin token (CARILLON_ADMIN_TOKEN)", 400)
    try:
        matches = auth.check_token(request, token)
    except TooManyRequests as exc:
        return _login_page(request, exc.message, exc.status, exc.headers)
    if not matches:
        return _login_page(request, "wrong admin token", 401)
    response = RedirectResponse("/ops", status_code=303)
    auth.set_session(response, token, _secure(request))
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await _form(request)
    if _cross_site(request) or not auth.form_token_valid(request, (form or {}).get("csrf", "")):
        return Response("log out from the dashboard's own page", status_code=403)
    response = RedirectResponse("/ops/login", status_code=303)
    auth.clear_session(response)
    return response
