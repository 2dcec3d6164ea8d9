"""Consent per profile and channel, kept as one trait per channel (`email_consent`,
`sms_consent`, `ads_consent`: each channel's spec names its own).

Traits are last-write-wins by event time, which is what consent needs: a shop's late, older
identify never undoes a newer unsubscribe, and a newer explicit re-subscribe does. The
unsubscribe link and provider feedback write the same traits through `record()`, and journeys
read them like any trait (`profile.traits.sms_consent`).

A person's own action (the unsubscribe link, an SMS STOP or START, a bounce or complaint the
provider reports) is the latest word when it arrives, whatever time an event claimed before:
`record()` always writes, stamped after the stored value's time, so no event that was dated
ahead of it can win afterwards. A stored time beyond what ingest lets through (more than
`FUTURE_TOLERANCE` ahead of now: written before ingest clamped event times) is not trusted
and does not carry over: the action is stamped with its own time, which unlocks the trait.

What each state means for sending is the channel's to say (`ChannelSpec.consent`): e-mail is
allowed unless the person unsubscribed, bounced or complained (CAN-SPAM opt-out); SMS needs an
explicit opt-in (TCPA); ads are allowed unless denied (GDPR objection).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from app import clock
from app.events.event_time import FUTURE_TOLERANCE
from app.profiles import repository
from channels import registry

# The database's resolution (PostgreSQL keeps microseconds): the smallest step that is "after".
_AFTER = timedelta(microseconds=1)


def _stamp(session: Session, profile_id: str, trait: str, at: datetime) -> datetime:
    """When a person's own action counts as written: at `at` (never later than now), or just
    after the stored value when that is later and trustworthy."""
    now = clock.now()
    stamp = min(at, now)
    stored = repository.trait_timestamp(session, profile_id, trait)
    if stored is not None and stamp <= stored <= now + FUTURE_TOLERANCE:
        stamp = stored + _AFTER
    return stamp


def record(
    session: Session, profile_id: str, channel: str, state: str, at: datetime, source_id: str
) -> None:
    """Set a person's consent for a channel: the person (or their provider) said so at `at`;
    `source_id` names what said so (a webhook event id, an unsubscribe token)."""
    rule = registry.spec(channel).consent
    if state not in rule.states:
        raise ValueError(f"{state!r} is not a {rule.kind} consent state: {sorted(rule.states)}")
    trait = rule.trait
    stamp = _stamp(session, profile_id, trait, at)
    repository.upsert_traits(session, profile_id, {trait: state}, stamp, source_id, overwrite=True)


def suppression_reason(
    channel: str, traits: Mapping[str, Any], *, transactional: bool = False
) -> str | None:
    """Why a message on `channel` must not go out, or None when it may: the channel's spec
    says how its consent is kept and read, and what a transactional message is exempt from."""
    return registry.spec(channel).consent.refusal_of(traits, transactional=transactional)


def unreachable(channel: str, person: Mapping[str, Any], *, transactional: bool) -> str | None:
    """Why a message on `channel` could only be refused for this person (as the profile
    reads now: `traits`, `email`, `phone`): no address to send to, or no consent; None when
    it may go. Checked before planning, where a refusal at send time would come too late to
    choose otherwise."""
    address = registry.spec(channel).address
    if address is not None and not person.get(address):
        return f"the person has no {address} to send to"
    reason = suppression_reason(channel, person.get("traits") or {}, transactional=transactional)
    return f"no consent ({reason})" if reason else None
