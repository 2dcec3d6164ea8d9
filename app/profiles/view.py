"""The profile as journeys, templates and the send-time checks see it.

Apart from the profile service (identity resolution and merges, which move trips between
profiles) so that reading a person pulls in no journey code: the delivery worker reads people too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from app.profiles import repository as repo
from app.profiles.models import USER_ID, Profile
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
    found = {}
    for profile_id in ids:
        kinds = identities[profile_id]
        found[profile_id] = {
            "id": profile_id,
            "user_id": kinds.get(USER_ID),
            "traits": traits[profile_id],
            "email": traits[profile_id].get("email") or kinds.get("email"),
            "phone": traits[profile_id].get("phone") or kinds.get("phone"),
            **cdp[profile_id],  # computed, segments, lifecycle_stage
        }
    return found


def view(session: Session, profile: Profile, cdp: dict[str, Any] | None = None) -> dict[str, Any]:
    """The profile as journeys see it: `profile.traits`, `profile.email`, `profile.phone`,
    `profile.computed`, `profile.segments`, `profile.lifecycle_stage`."""
    return views(session, [profile], None if cdp is None else {profile.id: cdp})[profile.id]
