"""The 24-hour customer-service window: WhatsApp takes free text from a business only within
24 hours of the person's last message to it.

The moment is kept on the profile as the trait `whatsapp_last_inbound_at` (ISO 8601, UTC),
written by the signed inbound webhook, last write wins; journeys may read it like any trait.
The adapter reads it when it sends: the channel contract hands an adapter no traits, so this
is the one read it makes of the database itself.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import session_scope
from app.profiles import repository
from app.profiles.models import Trait

TRAIT = "whatsapp_last_inbound_at"
LENGTH = timedelta(hours=24)
# The webhook is stamped when it reaches Carillon, after Twilio took the message, and a send
# takes a moment to reach Meta: the window is taken to close this much early, so a text is not
# sent into its last seconds. The same margin forgives clocks of two processes that disagree.
MARGIN = timedelta(minutes=5)


def record(session: Session, profile_id: str, at: datetime, source_id: str) -> None:
    """The person wrote to us at `at` (`source_id`: Twilio's MessageSid)."""
    repository.upsert_traits(session, profile_id, {TRAIT: at.isoformat()}, at, source_id)


def last_inbound(profile_id: str) -> datetime | None:
    with session_scope() as session:
        value = session.scalar(
            select(Trait.value).where(Trait.profile_id == profile_id, Trait.name == TRAIT)
        )
    return moment(value)


def moment(value: Any) -> datetime | None:
    """The trait's time; None for anything but an ISO 8601 time with its offset."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def is_open(last: datetime | None, now: datetime) -> bool:
    """Whether free text may go now. A time ahead of now (set by hand, or a clock far off) is
    not believed: it would hold the window open."""
    if last is None or last > now + MARGIN:
        return False
    return now < last + LENGTH - MARGIN
