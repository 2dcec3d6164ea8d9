"""The profile as journeys, templates and the send-time checks see it.

Apart from the profile service (identity resolution and merges, which move trips between
profiles) so that reading a person pulls in no journey code: the delivery worker reads people too.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.profiles import repository as repo
from app.profiles.models import USER_ID, Profile


def view(session: Session, profile: Profile) -> dict[str, Any]:
    """The profile as journeys see it: `profile.traits`, `profile.email`, `profile.phone`."""
    traits = repo.traits_of(session, profile.id)
    ids = {i.kind: i.value for i in repo.identities_of(session, profile.id)}
    return {
        "id": profile.id,
        "user_id": ids.get(USER_ID),
        "traits": traits,
        "email": traits.get("email") or ids.get("email"),
        "phone": traits.get("phone") or ids.get("phone"),
    }
