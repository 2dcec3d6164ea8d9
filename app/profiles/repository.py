"""Profile queries, including the last-write-wins trait upsert that makes traits converge."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, literal, select, text, tuple_, union_all, update
from sqlalchemy.orm import Session, joinedload

from app import clock
from app.db import dialect_insert, is_postgres
from app.profiles.models import Identity, Profile, Trait

_LOCK_ALL = text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k")


def lock_identities(session: Session, keys: Iterable[tuple[str, str]]) -> None:
    """Serialize work on one person across workers: a transaction-scoped advisory lock per
    identity, taken in a fixed order so two workers cannot deadlock. (SQLite already runs one
    writer at a time.)"""
    if not is_postgres(session):
        return
    locks = sorted({zlib.crc32(f"{kind}:{value}".encode()) - 2**31 for kind, value in keys})
    if locks:  # one round trip; unnest yields the sorted array in order
        session.execute(_LOCK_ALL, {"keys": locks})


def touch(session: Session, profile: Profile) -> None:
    """Mark the profile changed, at once rather than at the next flush: on PostgreSQL the
    UPDATE holds the row's lock until commit, the lock the window expiry claims profiles by
    (SKIP LOCKED), so routing needs no `SELECT … FOR UPDATE` of its own to keep it out."""
    session.execute(update(Profile).where(Profile.id == profile.id).values(updated_at=clock.now()))


def find_identities(session: Session, keys: Sequence[tuple[str, str]]) -> list[Identity]:
    """The identities among `keys`, their profiles read in the same query: the caller almost
    always goes on to its profile, which `session.get` then finds without a round trip."""
    if not keys:
        return []
    stmt = (
        select(Identity)
        .options(joinedload(Identity.profile, innerjoin=True))
        .where(tuple_(Identity.kind, Identity.value).in_(keys))
    )
    return list(session.scalars(stmt))


def identities_of_people(session: Session, profile_ids: Sequence[str]) -> dict[str, list[Identity]]:
    """Each profile's identities, in one query for the lot."""
    found: dict[str, list[Identity]] = {profile_id: [] for profile_id in profile_ids}
    for identity in session.scalars(select(Identity).where(Identity.profile_id.in_(profile_ids))):
        found[identity.profile_id].append(identity)
    return found


def traits_of_people(session: Session, profile_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Each profile's traits by name, in one query for the lot."""
    found: dict[str, dict[str, Any]] = {profile_id: {} for profile_id in profile_ids}
    stmt = select(Trait.profile_id, Trait.name, Trait.value).where(
        Trait.profile_id.in_(profile_ids)
    )
    for profile_id, name, value in session.execute(stmt):
        found[profile_id][name] = value
    return found


def traits_and_identities(
    session: Session, profile_ids: Sequence[str]
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, str]]]:
    """Each profile's traits by name and identities by kind, in one query for the lot: what a
    person's view needs, read once per event in routing. The identities' values come as JSON
    strings beside the traits' JSON values (a UNION ALL needs one column type)."""
    traits: dict[str, dict[str, Any]] = {profile_id: {} for profile_id in profile_ids}
    identities: dict[str, dict[str, str]] = {profile_id: {} for profile_id in profile_ids}
    as_json = func.to_jsonb if is_postgres(session) else func.json_quote
    stmt = union_all(
        select(Trait.profile_id, Trait.name, Trait.value, literal(True)).where(
            Trait.profile_id.in_(profile_ids)
        ),
        select(Identity.profile_id, Identity.kind, as_json(Identity.value), literal(False)).where(
            Identity.profile_id.in_(profile_ids)
        ),
    )
    for profile_id, name, value, is_trait in session.execute(stmt):
        (traits if is_trait else identities)[profile_id][name] = value
    return traits, identities


def traits_of(session: Session, profile_id: str) -> dict[str, Any]:
    return traits_of_people(session, [profile_id])[profile_id]


def trait_timestamp(session: Session, profile_id: str, name: str) -> datetime | None:
    stmt = select(Trait.timestamp).where(Trait.profile_id == profile_id, Trait.name == name)
    return session.scalar(stmt)


def upsert_traits(
    session: Session,
    profile_id: str,
    traits: dict[str, Any],
    timestamp: datetime,
    message_id: str,
    *,
    overwrite: bool = False,
) -> None:
    """Write each trait unless the stored one was set by a newer event (ties: larger messageId);
    with `overwrite`, whatever is stored.

    One atomic statement, so concurrent workers need no lock to converge."""
    if not traits:
        return
    rows = [
        {
            "profile_id": profile_id,
            "name": name,
            "value": value,
            "timestamp": timestamp,
            "message_id": message_id,
        }
        for name, value in traits.items()
    ]
    stmt = dialect_insert(session)(Trait).values(rows)
    newer = tuple_(Trait.timestamp, Trait.message_id) < tuple_(
        stmt.excluded.timestamp, stmt.excluded.message_id
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[Trait.profile_id, Trait.name],
        set_={
            "value": stmt.excluded.value,
            "timestamp": stmt.excluded.timestamp,
            "message_id": stmt.excluded.message_id,
        },
        where=None if overwrite else newer,
    )
    session.execute(stmt)


def move_traits(session: Session, source_id: str, target_id: str) -> None:
    """Fold the source's traits into the target with the same last-write-wins rule."""
    for trait in session.scalars(select(Trait).where(Trait.profile_id == source_id)):
        upsert_traits(
            session, target_id, {trait.name: trait.value}, trait.timestamp, trait.message_id
        )
    session.execute(delete(Trait).where(Trait.profile_id == source_id))


def repoint(session: Session, column: Any, source_id: str, target_id: str) -> None:
    session.execute(
        update(column.class_).where(column == source_id).values({column.key: target_id})
    )


def get_profile(session: Session, profile_id: str) -> Profile | None:
    return session.get(Profile, profile_id)
