"""Twilio's callbacks: message status (`StatusCallback`) and inbound SMS (the number's
"A message comes in" webhook), both form-encoded.

A status callback names the message by its SID; each (SID, status) pair is recorded once in the
delivery's history. An inbound SMS is kept once per MessageSid; the opt-out and opt-in keywords
set SMS consent for the person whose phone identity sent it, HELP is answered in TwiML.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session
from twilio.twiml.messaging_response import MessagingResponse

from app import clock
from app.db import dialect_insert
from app.delivery import history
from app.delivery.models import Delivery
from app.profiles import consent
from app.profiles.models import Identity
from app.webhooks.models import InboundMessage

log = logging.getLogger(__name__)

SOURCE = "twilio"
# Every MessageStatus Twilio documents for a message resource.
STATUSES = frozenset(
    {
        "queued",
        "sending",
        "sent",
        "delivered",
        "undelivered",
        "failed",
        "receiving",
        "received",
        "accepted",
        "scheduled",
        "read",
        "partially_delivered",
        "canceled",
    }
)
# Twilio's default opt-out, opt-in and help keywords (a whole message, any case).
KEYWORDS = {
    **dict.fromkeys(("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"), "stop"),
    **dict.fromkeys(("START", "YES", "UNSTOP"), "start"),
    **dict.fromkeys(("HELP", "INFO"), "help"),
}
_CONSENT = {"stop": "opted_out", "start": "opted_in"}
MAX_FIELD = 1600  # Twilio's longest message body


class Malformed(ValueError):
    pass


def _required(params: dict[str, str], name: str) -> str:
    value = params.get(name, "").strip()
    if not value or len(value) > 64:
        raise Malformed(f"{name}: missing or not a Twilio value")
    return value


@dataclass(frozen=True)
class StatusCallback:
    message_sid: str
    status: str
    error_code: str | None


def parse_status(params: dict[str, str]) -> StatusCallback:
    code = params.get("ErrorCode", "").strip()
    return StatusCallback(
        _required(params, "MessageSid"),
        _required(params, "MessageStatus").lower(),
        code[:32] or None,
    )


def apply_status(session: Session, callback: StatusCallback) -> bool:
    """True when recorded now; False for a replay, an unknown status or someone else's SMS."""
    return record_status(session, callback, "sms", SOURCE, {})


def record_status(
    session: Session,
    callback: StatusCallback,
    channel: str,
    source: str,
    error_words: Mapping[str, str],
) -> bool:
    """A Twilio status callback in the history of the `channel` delivery it is about, once
    (its MessageSid and status are the key), its error code spelled out by `error_words`;
    what SMS and WhatsApp, both Twilio's Messages API, share."""
    if callback.status not in STATUSES:
        log.info("%s status %r for %s skipped", channel, callback.status, callback.message_sid)
        return False
    delivery = session.scalars(
        select(Delivery).where(
            Delivery.provider_message_id == callback.message_sid, Delivery.channel == channel
        )
    ).first()
    if delivery is None:
        log.info("%s status for %s skipped: no delivery of ours", channel, callback.message_sid)
        return False
    detail = None
    if callback.error_code:
        words = error_words.get(callback.error_code)
        detail = f"ErrorCode {callback.error_code}" + (f": {words}" if words else "")
    external_id = f"{callback.message_sid}:{callback.status}"
    return history.record(
        session, delivery.id, callback.status, detail, source, clock.now(), external_id
    )


@dataclass(frozen=True)
class Inbound:
    message_sid: str
    sender: str
    body: str

    @property
    def keyword(self) -> str | None:
        return KEYWORDS.get(self.body.strip().strip(".!").upper())


def parse_inbound(params: dict[str, str]) -> Inbound:
    body = params.get("Body", "")
    if len(body) > MAX_FIELD:
        raise Malformed(f"Body: longer than {MAX_FIELD} characters")
    return Inbound(_required(params, "MessageSid"), _required(params, "From"), body)


class Received(Protocol):
    """An inbound message of any Twilio channel, as `keep_inbound` reads it."""

    @property
    def message_sid(self) -> str: ...

    @property
    def sender(self) -> str: ...

    @property
    def body(self) -> str: ...

    @property
    def keyword(self) -> str | None: ...


def keep_inbound(
    session: Session, provider: str, inbound: Received, phone: str, now: datetime
) -> tuple[bool, str | None]:
    """Keep an inbound message once per provider message id (the proof of an opt-out, and what
    makes a replayed webhook change nothing): whether it is new, and the profile whose phone
    identity sent it (None for an unknown number)."""
    identity = session.get(Identity, ("phone", phone))
    profile_id = identity.profile_id if identity else None
    row = {
        "provider": provider,
        "external_id": inbound.message_sid,
        "sender": inbound.sender,
        "profile_id": profile_id,
        "body": inbound.body,
        "keyword": inbound.keyword,
        "received_at": now,
    }
    stmt = dialect_insert(session)(InboundMessage).values(row).on_conflict_do_nothing()
    # RETURNING: rowcount is unknown for ON CONFLICT DO NOTHING on psycopg.
    return session.execute(stmt.returning(InboundMessage.id)).first() is not None, profile_id


def apply_inbound(session: Session, inbound: Inbound) -> bool:
    """Keep the message and act on its keyword; False (nothing changed) for a replay."""
    now = clock.now()
    kept, profile_id = keep_inbound(session, SOURCE, inbound, inbound.sender, now)
    if not kept:
        return False
    state = _CONSENT.get(inbound.keyword or "")
    if state and profile_id:
        consent.record(session, profile_id, "sms", state, now, inbound.message_sid)
        log.info("profile %s: sms %s (inbound %s)", profile_id, state, inbound.message_sid)
    elif state:
        log.info("inbound %s from an unknown number: %s not recorded", inbound.message_sid, state)
    return True


def reply(inbound: Inbound, help_text: str) -> str:
    """TwiML: the help text for HELP, an empty response otherwise (Twilio's own opt-out
    handling confirms STOP and START; a second reply would be noise)."""
    response = MessagingResponse()
    if inbound.keyword == "help":
        response.message(help_text)
    return str(response)
