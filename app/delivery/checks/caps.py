"""Frequency caps: at most so many messages per channel to one person in a window, counting
every journey together, so five journeys each sending "just one" e-mail do not flood anybody.

The caps come from CARILLON_FREQUENCY_CAPS (`email=1/24h+3/7d`), or from the journey's own
`caps:` for its messages. A message counts from the moment it is claimed (`sending`) until its
window has passed, if it went out or may have: sent, dry run, sending, unknown.

Race-free: the person's profile row is locked (`SELECT … FOR UPDATE` on PostgreSQL; SQLite
already runs one writer at a time) inside the claim's transaction before counting, so of two
workers claiming two messages for one person at once, the second counts the first one's
`sending` row and only one takes the last slot.

Priority: a message does not take a slot that a message of a higher-priority journey, pending
and due for the same person and channel, would need: each such message counts as if sent now.
Transactional messages (a transactional journey's, `POST /v1/messages`) are never capped;
they still count towards the caps. A broadcast's messages are capped by CARILLON_FREQUENCY_CAPS
with the default priority, and wait (never dropped) for a free slot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.delivery import models
from app.delivery.checks.kind import is_transactional
from app.delivery.checks.verdicts import Defer, SendContext, Suppress, Verdict
from app.delivery.models import Delivery
from app.delivery.retry_state import retries_due
from app.journeys import catalog
from app.journeys.definition import Cap, Journey
from app.journeys.models import JourneyInstance
from app.profiles.models import Profile

# What went out, or may have: a slot is taken from the claim on.
COUNTED = (models.SENT, models.DRY_RUN, models.SENDING, models.UNKNOWN)


def check(context: SendContext) -> Verdict:
    session, delivery, now = context.session, context.delivery, context.now
    if is_transactional(session, delivery):  # never capped, always counted
        return None
    channel = delivery.channel
    policy = _policy(session, delivery)
    caps = policy.caps.get(channel, context.settings.caps_by_channel().get(channel, ()))
    if not caps:
        return None
    session.execute(select(Profile.id).where(Profile.id == delivery.profile_id).with_for_update())
    since = now - max(cap.window for cap in caps)
    ahead = _higher_priority_due(session, delivery, policy.priority, now)
    # Newest first; each higher-priority message due now holds a slot as if sent now.
    taken = [now] * ahead + _counted_since(session, delivery, since)
    until, blocking = None, None
    for cap in caps:
        used = [at for at in taken if at > now - cap.window]
        if len(used) >= cap.count:
            free_at = used[cap.count - 1] + cap.window  # when the oldest slot in use frees
            if until is None or free_at > until:
                until, blocking = free_at, cap
    if until is None:
        return None
    reason = f"frequency cap {channel} {blocking}"
    if ahead:
        reason += f" ({ahead} higher-priority message(s) due first)"
    return Suppress(reason) if policy.on_cap == "drop" else Defer(until, reason)


@dataclass(frozen=True)
class _Policy:
    caps: Mapping[str, tuple[Cap, ...]]
    priority: int
    on_cap: str


# A broadcast's messages (marketing, no trip): the configured caps, default priority, deferred.
_BROADCAST = _Policy({}, 0, "defer")


def _policy(session: Session, delivery: Delivery) -> _Policy | Journey:
    if delivery.instance_id is None:
        return _BROADCAST
    return catalog.journey_of_instance(session, delivery.instance_id)


def _counted_since(session: Session, delivery: Delivery, since: datetime) -> list[datetime]:
    """When each other message on this channel to this person went out (or was claimed)."""
    at = func.coalesce(Delivery.sent_at, Delivery.updated_at)
    return list(
        session.scalars(
            select(at)
            .where(
                Delivery.profile_id == delivery.profile_id,
                Delivery.channel == delivery.channel,
                Delivery.status.in_(COUNTED),
                Delivery.id != delivery.id,
                at > since,
            )
            .order_by(at.desc())
        )
    )


def _higher_priority_due(session: Session, delivery: Delivery, priority: int, now: datetime) -> int:
    """Marketing messages of higher-priority journeys, pending and due now, for this person
    and channel: the ones this message must leave a slot for."""
    rows = session.execute(
        select(JourneyInstance.journey_version_id, func.count())
        .select_from(Delivery)
        .join(JourneyInstance, JourneyInstance.id == Delivery.instance_id)
        .where(
            Delivery.profile_id == delivery.profile_id,
            Delivery.channel == delivery.channel,
            Delivery.status == models.PENDING,
            Delivery.id != delivery.id,
            retries_due(now),
        )
        .group_by(JourneyInstance.journey_version_id)
    ).all()
    ahead = 0
    for version_id, count in rows:
        other = catalog.journey_of_version(session, version_id)
        if other.kind == "marketing" and other.priority > priority:
            ahead += count
    return ahead
