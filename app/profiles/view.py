"""The profile as journeys, templates and the send-time checks see it.

Apart from the profile service (identity resolution and merges, which move trips between
profiles) so that reading a person pulls in no journey code: the delivery worker reads people too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from app.profiles import repository as repo
from app.profiles.models import USER_ID, Identity, Profile
from app.segments import reading as segments


def views(
    session: Session,
    profiles: Sequence[Profile],
    cdp: dict[str, dict[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Each profile as journeys see it, by id: three queries however many people, one when
    the caller has their computed traits and memberships in hand already (`cdp`, by id)."""
    ids = [profile.id for profile in profiles]
    traits, identities = repo.traits_and_identities(session, ids)
    cdp = cdp if cdp is not None else segments.of_people(session, ids)
    return {
        profile_id: _shaped(
            profile_id,
            identities[profile_id],
            traits[profile_id],
            cdp[profile_id],
        )
        for profile_id in ids
    }


def _shaped(
    profile_id: str, kinds: dict[str, str], traits: dict[str, Any], cdp: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": profile_id,
        "user_id": kinds.get(USER_ID),
        "traits": traits,
        "email": traits.get("email") or kinds.get("email"),
        "phone": traits.get("phone") or kinds.get("phone"),
        **cdp,  # computed, segments, lifecycle_stage
    }


@dataclass(frozen=True)
class Identified:
    """Whoever holds an identity: their profile's id, when it was erased, and their view."""

    profile_id: str
    erased_at: datetime | None
    person: dict[str, Any]


def identified(session: Session, kind: str, value: str, *, cdp: bool) -> Identified | None:
    """The holder of the identity `kind`:`value` as `view` shows them, in two statements
    instead of six (a request about one person: `POST /v1/messages`); with `cdp` False, without
    `computed`, `segments` and `lifecycle_stage`, for a caller whose templates read no
    `profile`."""
    holder = aliased(Identity)
    rows = session.execute(
        select(Profile.id, Profile.erased_at, Identity.kind, Identity.value)
        .join(holder, holder.profile_id == Profile.id)
        .join(Identity, Identity.profile_id == Profile.id)
        .where(holder.kind == kind, holder.value == value)
    ).all()
    if not rows:
        return None
    profile_id = rows[0].id
    traits = repo.traits_of_people(session, [profile_id])[profile_id]
    stored = segments.of_people(session, [profile_id])[profile_id] if cdp else {}
    kinds = {row.kind: row.value for row in rows}
    return Identified(profile_id, rows[0].erased_at, _shaped(profile_id, kinds, traits, stored))


def view(session: Session, profile: Profile, cdp: dict[str, Any] | None = None) -> dict[str, Any]:
    """The profile as journeys see it: `profile.traits`, `profile.email`, `profile.phone`,
    `profile.computed`, `profile.segments`, `profile.lifecycle_stage`."""
    return views(session, [profile], None if cdp is None else {profile.id: cdp})[profile.id]
