"""A person as the profile API, `carillon profiles show` and the ops person page show them:
traits, consent per channel, identities, trips, and the latest events and deliveries.

Consent is read through each channel's spec, so a channel installed tomorrow shows up here
without a change.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.delivery.models import Delivery
from app.events.models import Event
from app.journeys.models import JourneyInstance
from app.profiles import records
from app.profiles import repository as repo
from app.profiles.models import Profile
from app.segments import reading as segments
from channels import registry

# How many of each history a page shows by default, and at most.
DEFAULT_LIMIT = 20
MAX_LIMIT = 200


def consent(traits: dict[str, Any]) -> list[dict[str, Any]]:
    """Per channel: the stored state (None: never said) and whether a message may go out."""
    rows = []
    for name, spec in registry.specs().items():
        refusal = spec.consent.refusal(traits)
        rows.append(
            {
                "channel": name,
                "kind": spec.consent.kind,
                "state": traits.get(spec.consent.trait),
                "allowed": refusal is None,
                "reason": refusal,
            }
        )
    return rows


def _event(row: Event) -> dict[str, Any]:
    return {
        "id": row.id,
        "type": row.type,
        "name": row.name,
        "message_id": row.message_id,
        "timestamp": row.timestamp,
        "received_at": row.received_at,
        "properties": row.payload.get("properties"),
        "traits": row.payload.get("traits"),
    }


def _delivery(row: Delivery) -> dict[str, Any]:
    return {
        "id": row.id,
        "journey_id": row.journey_id,
        "step_path": row.step_path,
        "channel": row.channel,
        "status": row.status,
        "note": row.error,
        "created_at": row.created_at,
        "sent_at": row.sent_at,
    }


def _trip(row: JourneyInstance) -> dict[str, Any]:
    return {
        "id": row.id,
        "journey_id": row.journey_id,
        "status": row.status,
        "step": row.cursor,
        "entered_at": row.entered_at,
        "ended_at": row.ended_at,
    }


def describe(session: Session, profile: Profile, limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
    """The person, with the `limit` newest events, deliveries and trips (newest first)."""
    who = records.person(session, profile)
    traits = repo.traits_of(session, profile.id)
    events = session.scalars(
        select(Event)
        .where(records.HOLDINGS[Event.__tablename__](who))
        .order_by(Event.timestamp.desc(), Event.id.desc())
        .limit(limit)
    )
    deliveries = session.scalars(
        select(Delivery)
        .where(Delivery.profile_id.in_(who.profile_ids))
        .order_by(Delivery.id.desc())
        .limit(limit)
    )
    trips = session.scalars(
        select(JourneyInstance)
        .where(JourneyInstance.profile_id.in_(who.profile_ids))
        .order_by(JourneyInstance.id.desc())
        .limit(limit)
    )
    return {
        "profile_id": profile.id,
        "created_at": profile.created_at,
        "updated_at": profile.updated_at,
        "identities": [{"kind": kind, "value": value} for kind, value in who.identities],
        "traits": traits,
        # computed (traits), segments, lifecycle_stage: what segments/ makes of the events
        **segments.of_people(session, [profile.id])[profile.id],
        "consent": consent(traits),
        "trips": [_trip(row) for row in trips],
        "events": [_event(row) for row in events],
        "deliveries": [_delivery(row) for row in deliveries],
        "merged_profiles": list(who.profile_ids[1:]),
    }
