"""`GET /unsubscribe/{token}` asks, `POST` (the page's button, or a mail client's RFC 8058
one-click `List-Unsubscribe=One-Click`) does it.

The GET changes nothing, because link scanners and mail previews fetch every link. The POST
sets e-mail consent `unsubscribed` as of now and records it in the delivery's history once.
"""

from __future__ import annotations

import html
import logging

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from app import clock, unsubscribe
from app.db import DbSession, after_commit
from app.delivery import history
from app.delivery.models import Delivery
from app.profiles import consent
from app.profiles.models import Profile
from app.settings import get_settings
from channels import registry

log = logging.getLogger(__name__)

router = APIRouter(tags=["unsubscribe"])

SOURCE = "unsubscribe_link"
_PAGE = """<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="robots" content="noindex"><title>{title}</title></head>
<body style="font-family:sans-serif;max-width:32em;margin:3em auto;padding:0 1em">
<h1 style="font-size:1.3em">{title}</h1>{body}</body></html>"""
_CONFIRM = """<p>Vous ne recevrez plus nos e-mails marketing.<br>
You will no longer receive our marketing e-mails.</p>
<form method="post" action="{action}">
<input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">Se désabonner / Unsubscribe</button></form>"""


def _page(status: int, title: str, body: str) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=html.escape(title), body=body), status_code=status)


def _refused(exc: unsubscribe.InvalidToken) -> HTMLResponse:
    status = 403 if isinstance(exc, unsubscribe.ForgedToken) else 400
    return _page(
        status,
        "Lien invalide / Invalid link",
        f"<p>{html.escape(str(exc))}. Nothing was changed.</p>",
    )


def _gone() -> HTMLResponse:
    return _page(404, "Lien expiré / Expired link", "<p>This person is not known any more.</p>")


def _current_profile_id(session: Session, profile_id: str) -> str | None:
    """Follow merges: the link names the profile the message went to, which may since have
    been folded into another."""
    profile = session.get(Profile, profile_id)
    for _ in range(16):  # merges chain a few deep at most; never loop on bad data
        if profile is None or not profile.merged_into:
            break
        profile = session.get(Profile, profile.merged_into)
    return profile.id if profile is not None else None


def _unsubscribe(session: Session, claim: unsubscribe.Claim) -> bool:
    profile_id = _current_profile_id(session, claim.profile_id)
    if profile_id is None:
        return False
    now = clock.now()
    source_id = f"unsubscribe:{claim.delivery_id}"
    # The channel the message went on; a link whose delivery is gone (erased) withdraws
    # from every channel that sends such links.
    delivery = session.get(Delivery, claim.delivery_id)
    channels = (
        [delivery.channel]
        if delivery is not None
        else [name for name, spec in registry.specs().items() if spec.unsubscribe_link]
    )
    # Every click counts (someone who re-subscribed since may click an old link again);
    # the history keeps the first.
    for channel in channels:
        withdrawn = registry.spec(channel).consent.withdrawn
        consent.record(session, profile_id, channel, withdrawn, now, source_id)
    if delivery is not None:
        history.record(
            session, claim.delivery_id, "unsubscribe", "one-click link", SOURCE, now, source_id
        )
    after_commit(
        session,
        lambda: log.info(
            "profile %s unsubscribed by link (delivery %s)", profile_id, claim.delivery_id
        ),
    )
    return True


@router.get("/unsubscribe/{token}", response_class=HTMLResponse)
async def confirm(token: str) -> HTMLResponse:
    try:
        unsubscribe.read_token(get_settings(), token)
    except unsubscribe.InvalidToken as exc:
        return _refused(exc)
    action = html.escape(f"{unsubscribe.PATH}/{token}")
    return _page(200, "Se désabonner / Unsubscribe", _CONFIRM.format(action=action))


@router.post("/unsubscribe/{token}", response_class=HTMLResponse)
def one_click(token: str, session: DbSession) -> HTMLResponse:
    try:
        claim = unsubscribe.read_token(get_settings(), token)
    except unsubscribe.InvalidToken as exc:
        return _refused(exc)
    if not _unsubscribe(session, claim):
        return _gone()
    return _page(
        200,
        "Désabonnement confirmé / Unsubscribed",
        "<p>Vous êtes désabonné(e) de nos e-mails.<br>You are unsubscribed from our e-mails.</p>",
    )
