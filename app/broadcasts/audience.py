"""The audience, taken once when the broadcast starts: who is in it then is who gets it;
somebody who joins the segment later is not added, somebody who leaves it is still sent to
(consent is checked again at their turn, and again before the provider call).

Written a page of people at a time in profile id order, each with the moment their message
is due: the broadcast's time on their own clock (`timezone` trait, else
CARILLON_DEFAULT_TIMEZONE), or the one instant when the time has an offset.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Select, insert, select
from sqlalchemy.orm import Session

from app.broadcasts.loader import BroadcastDefinition
from app.broadcasts.models import PENDING, Recipient
from app.delivery.checks.quiet_hours import clock_reaches
from app.profiles.consent import unreachable
from app.profiles.models import Profile
from app.profiles.timezone import timezone_of
from app.profiles.view import views
from app.segments.models import Membership

PAGE = 1000
_DAWN = datetime(1, 1, 2, tzinfo=UTC)  # before any broadcast: the first time a clock shows it


def due_at(at: datetime, zone: ZoneInfo) -> datetime:
    """When a person in `zone` is due; a time their clock skips (DST) is reached at the jump."""
    if at.tzinfo is not None:
        return at.astimezone(UTC)
    return clock_reaches(at.date(), at.time(), zone, _DAWN)


def _candidates(definition: BroadcastDefinition, after: str | None) -> Select[Profile]:
    stmt = select(Profile).where(Profile.merged_into.is_(None), Profile.erased_at.is_(None))
    if definition.segment is not None:
        stmt = stmt.join(Membership, Membership.profile_id == Profile.id).where(
            Membership.segment_id == definition.segment
        )
    if after is not None:
        stmt = stmt.where(Profile.id > after)
    return stmt.order_by(Profile.id).limit(PAGE)


def snapshot(session: Session, definition: BroadcastDefinition) -> int:
    """Write the recipients of a broadcast being started; how many. Everyone with consent
    means: people the channel may reach with marketing now, at an address they have."""
    zones: dict[str, datetime] = {}
    total, after = 0, None
    while people := list(session.scalars(_candidates(definition, after))):
        after = people[-1].id
        seen = views(session, people)
        rows = []
        for profile in people:
            person = seen[profile.id]
            channel = definition.consent_channel
            if channel is not None and unreachable(channel, person, transactional=False):
                continue
            zone = timezone_of(profile.id, person["traits"])
            if zone.key not in zones:
                zones[zone.key] = due_at(definition.at, zone)
            rows.append(
                {
                    "broadcast_id": definition.id,
                    "profile_id": profile.id,
                    "state": PENDING,
                    "due_at": zones[zone.key],
                }
            )
        if rows:
            session.execute(insert(Recipient), rows)
        total += len(rows)
    return total
