"""A person's computed traits, segments and lifecycle stage as CEL, templates and the profile
API read them (`profile.computed.*`, `profile.segments`, `profile.lifecycle_stage`).

A count or distinct trait nobody fed yet reads 0, not missing: "fewer than 2 carts" must hold
for someone who never abandoned one, without a `has()` around every comparison.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.segments import catalog
from app.segments.definition import Definitions
from app.segments.models import ComputedTrait, Membership

ZERO_WHEN_ABSENT = ("count", "distinct")


def computed_of(definitions: Definitions, stored: dict[str, Any]) -> dict[str, Any]:
    """The stored values (None ones left out: no value), with the zeros of counts not fed."""
    values = {name: value for name, value in stored.items() if value is not None}
    for trait in definitions.aggregates.values():
        if trait.kind in ZERO_WHEN_ABSENT and trait.name not in values:
            values[trait.name] = 0
    return values


def cdp_of(
    definitions: Definitions, stored: dict[str, Any], members: Sequence[tuple[str, bool]]
) -> dict[str, Any]:
    """`computed`, `segments` (ids, sorted) and `lifecycle_stage` (or None) from the stored
    values and the (segment id, is a stage) memberships."""
    return {
        "computed": computed_of(definitions, stored),
        "segments": sorted(segment_id for segment_id, stage in members if not stage),
        "lifecycle_stage": next((segment_id for segment_id, stage in members if stage), None),
    }


def of_people(session: Session, profile_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per profile, what `cdp_of` says, in two queries however many people."""
    definitions = catalog.current(session)
    stored: dict[str, dict[str, Any]] = {profile_id: {} for profile_id in profile_ids}
    rows = session.execute(
        select(ComputedTrait.profile_id, ComputedTrait.name, ComputedTrait.value).where(
            ComputedTrait.profile_id.in_(profile_ids)
        )
    )
    for profile_id, name, value in rows:
        stored[profile_id][name] = value
    members: dict[str, list[tuple[str, bool]]] = {profile_id: [] for profile_id in profile_ids}
    found = session.execute(
        select(Membership.profile_id, Membership.segment_id, Membership.stage).where(
            Membership.profile_id.in_(profile_ids)
        )
    )
    for profile_id, segment_id, stage in found:
        members[profile_id].append((segment_id, stage))
    return {
        profile_id: cdp_of(definitions, stored[profile_id], members[profile_id])
        for profile_id in profile_ids
    }
