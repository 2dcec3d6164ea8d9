"""Erasing a person (GDPR article 17): what an erasure request does, in one transaction.

1. The keyed hash of each identity is kept (app/profiles/erased.py), so later events naming
   it are acknowledged and dropped rather than bringing the person back.
2. Live trips end and pending messages are cancelled, through the journeys' exit and the
   delivery state machine, so nothing more is sent.
3. Every audience the person was added to gets a removal planned (the channel spec's
   `undo`): an outbox row, retried and recorded like any message.
4. Traits and identities are deleted; event payloads, rendered messages, provider notes and
   inbound texts are scrubbed in place, so counts (KPIs, journey results) stay right.

A planned removal needs the person's contact to reach the provider, so the e-mail and phone
identities alone are kept until the removals are settled; `finish_pending` (run by the
scheduler's sweep, and by any repeated erasure) deletes them then. Erasing again changes
nothing more and answers the same.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    cast,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from app import clock
from app.delivery import state as delivery_state
from app.delivery.models import PENDING, SENDING, Delivery, DeliveryEvent
from app.events.models import Event
from app.journeys import lifecycle
from app.journeys.models import JourneyInstance
from app.profiles import erased, records
from app.profiles import repository as repo
from app.profiles.models import CONTACT_TRAITS, Identity, Profile, Trait
from app.segments.models import ComputedTrait, Membership, TraitEvent
from app.webhooks.models import InboundMessage

log = logging.getLogger(__name__)

REASON = "the person's data was erased"
# What a scrubbed delivery's note says instead of the provider's words (which may quote the
# address); it also marks the row as scrubbed.
NOTE = "erased with the person's data"


@dataclass(frozen=True)
class Erasure:
    """The answer to an erasure request: the same however often it is asked."""

    profile_id: str
    erased_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {"profile_id": self.profile_id, "status": "erased", "erased_at": self.erased_at}


def _removal_in_flight() -> ColumnElement[bool]:
    return Delivery.step_path.like(f"%{lifecycle.REMOVAL_SUFFIX}") & Delivery.status.in_(
        (PENDING, SENDING)
    )


def erase(session: Session, profile: Profile) -> tuple[Erasure, dict[str, int]]:
    """Erase the person; returns the answer and what this call did (for the audit row)."""
    now = clock.now()
    # The locks routing takes per identity: an event of this person being routed now either
    # commits first (and is scrubbed below) or waits and then finds the identities erased.
    repo.lock_identities(session, records.person(session, profile).identities)
    who = records.person(session, profile)  # as of now that the locks are held
    erased.remember(session, who.identities, profile.id, now)
    done = {"identities_hashed": len(who.identities)}
    live = lifecycle.live_instances(session, profile.id)
    for instance in live:
        lifecycle.exit_instance(session, instance, REASON, undo_audiences=False)
    done["trips_ended"] = len(live)
    mine = Delivery.profile_id.in_(who.profile_ids)
    not_removal = Delivery.step_path.not_like(f"%{lifecycle.REMOVAL_SUFFIX}")
    done["messages_cancelled"] = delivery_state.cancel(session, mine & not_removal, REASON, now)
    trips = session.scalars(
        select(JourneyInstance).where(JourneyInstance.profile_id.in_(who.profile_ids))
    )
    done["audience_removals_planned"] = sum(
        lifecycle.plan_audience_removals(session, trip, every=True) for trip in trips
    )
    if profile.erased_at is None:
        profile.erased_at = profile.updated_at = now
    done |= _scrub(session, who, now)
    log.info("profile %s erased: %s", profile.id, done)
    return Erasure(profile.id, profile.erased_at), done


def _count(result: Any) -> int:
    return int(result.rowcount)


def _scrub(session: Session, who: records.Person, now: datetime) -> dict[str, int]:
    """Delete or blank everything about the person; the contacts stay while an audience
    removal still has to reach the provider."""
    ids = who.profile_ids
    pending = exists().where(Delivery.profile_id.in_(ids), _removal_in_flight())
    keep_contacts = bool(session.scalar(select(pending)))
    gone = delete(Identity).where(Identity.profile_id.in_(ids))
    if keep_contacts:
        gone = gone.where(Identity.kind.not_in(CONTACT_TRAITS))
    done = {
        "identities_deleted": _count(session.execute(gone)),
        "traits_deleted": _count(session.execute(delete(Trait).where(Trait.profile_id.in_(ids)))),
        # Computed from the events: what they add up to says as much as the events did.
        "computed_traits_deleted": sum(
            _count(session.execute(delete(table).where(table.profile_id.in_(ids))))
            for table in (ComputedTrait, TraitEvent, Membership)
        ),
    }
    holding = records.HOLDINGS
    # An event being routed right now is skipped (it waits on the identity locks held here,
    # then finds its person erased and scrubs itself): waiting for it would deadlock.
    unscrubbed = (
        select(Event.id)
        .where(
            holding[Event.__tablename__](who),
            or_(Event.user_id.is_not(None), Event.anonymous_id.is_not(None)),
        )
        .with_for_update(skip_locked=True)
    )
    done["events_scrubbed"] = _count(
        session.execute(
            update(Event)
            .where(Event.id.in_(unscrubbed))
            .values(
                payload={},
                user_id=None,
                anonymous_id=None,
                routing_error=None,
                message_id=literal("erased:") + cast(Event.id, String),
                # Not routed yet: it never will be, there is nobody left to route it to.
                processed_at=func.coalesce(Event.processed_at, now),
            )
            .execution_options(synchronize_session=False)
        )
    )
    done["messages_scrubbed"] = _count(
        session.execute(
            update(Delivery)
            .where(
                holding[Delivery.__tablename__](who),
                ~_removal_in_flight(),
                or_(Delivery.error.is_(None), Delivery.error != NOTE),
            )
            .values(content={}, error=NOTE)
            .execution_options(synchronize_session=False)
        )
    )
    session.execute(
        update(DeliveryEvent)
        .where(holding[DeliveryEvent.__tablename__](who))
        .values(detail=None)
        .execution_options(synchronize_session=False)
    )
    done["inbound_texts_scrubbed"] = _count(
        session.execute(
            update(InboundMessage)
            .where(
                holding[InboundMessage.__tablename__](who),
                or_(InboundMessage.sender != "", InboundMessage.body != ""),
            )
            .values(sender="", body="")
            .execution_options(synchronize_session=False)
        )
    )
    return done


def finish_pending(session: Session) -> int:
    """Delete the contacts erased people kept for their audience removals, once those are
    settled (sent, failed or given up on). Returns how many people were finished."""
    waiting = select(Profile).where(
        Profile.erased_at.is_not(None),
        exists().where(Identity.profile_id == Profile.id),
        ~exists().where(Delivery.profile_id == Profile.id, _removal_in_flight()),
    )
    finished = 0
    for profile in session.scalars(waiting):
        _scrub(session, records.person(session, profile), clock.now())
        finished += 1
    return finished
