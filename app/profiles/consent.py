"""Consent per profile and channel, kept as traits (`email_consent`, `sms_consent`,
`ads_consent`).

Traits are last-write-wins by event time, which is what consent needs: a shop's late, older
identify never undoes a newer unsubscribe, and a newer explicit re-subscribe does. The
unsubscribe link and provider feedback write the same traits through `record()`, and journeys
read them like any trait (`profile.traits.sms_consent`).

E-mail is allowed unless the person unsubscribed, bounced or complained (CAN-SPAM opt-out);
SMS needs an explicit opt-in (TCPA); ads are allowed unless denied (GDPR objection).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.profiles import repository

EMAIL_STATES = frozenset({"subscribed", "unsubscribed", "bounced", "complained"})
SMS_STATES = frozenset({"opted_in", "opted_out"})
ADS_STATES = frozenset({"allowed", "denied"})

_CHANNEL_KIND = {"email": "email", "sms": "sms", "meta_audience": "ads"}
_TRAIT = {"email": "email_consent", "sms": "sms_consent", "ads": "ads_consent"}
_STATES = {"email": EMAIL_STATES, "sms": SMS_STATES, "ads": ADS_STATES}


def record(
    session: Session, profile_id: str, channel: str, state: str, at: datetime, source_id: str
) -> None:
    """Set a person's consent for a channel as of `at`; `source_id` names what said so (a
    webhook event id, an unsubscribe token), so a replay is the same write."""
    kind = _CHANNEL_KIND[channel]
    if state not in _STATES[kind]:
        raise ValueError(f"{state!r} is not a {kind} consent state: {sorted(_STATES[kind])}")
    repository.upsert_traits(session, profile_id, {_TRAIT[kind]: state}, at, source_id)


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
