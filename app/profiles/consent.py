"""Consent per profile and channel, kept as traits (`email_consent`, `sms_consent`,
`ads_consent`).

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

E-mail is allowed unless the person unsubscribed, bounced or complained (CAN-SPAM opt-out);
SMS needs an explicit opt-in (TCPA); ads are allowed unless denied (GDPR objection).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from app import clock
from app.events.event_time import FUTURE_TOLERANCE
from app.profiles import repository

EMAIL_STATES = frozenset({"subscribed", "unsubscribed", "bounced", "complained"})
SMS_STATES = frozenset({"opted_in", "opted_out"})
ADS_STATES = frozenset({"allowed", "denied"})

_CHANNEL_KIND = {"email": "email", "sms": "sms", "meta_audience": "ads"}
_TRAIT = {"email": "email_consent", "sms": "sms_consent", "ads": "ads_consent"}
_STATES = {"email": EMAIL_STATES, "sms": SMS_STATES, "ads": ADS_STATES}
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
    kind = _CHANNEL_KIND[channel]
    if state not in _STATES[kind]:
        raise ValueError(f"{state!r} is not a {kind} consent state: {sorted(_STATES[kind])}")
    trait = _TRAIT[kind]
    stamp = _stamp(session, profile_id, trait, at)
    repository.upsert_traits(session, profile_id, {trait: state}, stamp, source_id, overwrite=True)


def _state(traits: Mapping[str, Any], name: str, allowed: frozenset[str]) -> str | None:
    value = traits.get(name)
    return value if isinstance(value, str) and value in allowed else None


def suppression_reason(channel: str, traits: Mapping[str, Any]) -> str | None:
    """Why a message on `channel` must not go out, or None when it may."""
    kind = _CHANNEL_KIND.get(channel)
    if kind == "email":
        state = _state(traits, "email_consent", EMAIL_STATES)
        if state is not None and state != "subscribed":
            return f"email {state}"
        return None
    if kind == "sms":
        # Set when Twilio refused the number (21211): a new number needs `phone_valid: true`.
        if traits.get("phone_valid") is False:
            return "phone invalid"
        state = _state(traits, "sms_consent", SMS_STATES)
        if state is None and traits.get("sms_opt_in") is True:
            state = "opted_in"
        if state == "opted_in":
            return None
        return "sms opted out" if state == "opted_out" else "sms requires explicit opt-in"
    if kind == "ads":
        if _state(traits, "ads_consent", ADS_STATES) == "denied":
            return "ads denied"
        return None
    return None
