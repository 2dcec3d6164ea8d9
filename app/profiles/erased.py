"""Recognising an erased person: the keyed hashes of their identities, looked up at ingest
and again at routing, so a shop that keeps sending events about someone who asked to be
forgotten does not bring them back.

A keyed hash (HMAC-SHA256 with CARILLON_SECRET_KEY), not a plain one: e-mail addresses and
phone numbers are few enough to be guessed back from an unkeyed SHA-256.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import signing
from app.db import dialect_insert
from app.profiles.models import ANONYMOUS_ID, CONTACT_TRAITS, USER_ID, ErasedIdentity
from app.settings import get_settings

_PURPOSE = b"erased-identity"


def digest(kind: str, value: str) -> str:
    return signing.sign(get_settings(), _PURPOSE, f"{kind}:{value}".encode()).hex()


def event_keys(
    user_id: str | None,
    anonymous_id: str | None,
    traits: Mapping[str, Any] | None,
    previous_id: str | None = None,
) -> list[tuple[str, str]]:
    """The identities an event names, as identity resolution reads them (contacts trimmed;
    an alias's `previousId` may be either kind of id)."""
    ids = [(USER_ID, user_id), (ANONYMOUS_ID, anonymous_id)]
    ids += [(USER_ID, previous_id), (ANONYMOUS_ID, previous_id)]
    keys = [(kind, value) for kind, value in ids if value]
    for kind in CONTACT_TRAITS:
        value = str((traits or {}).get(kind) or "").strip()
        if value:
            keys.append((kind, value))
    return keys


def erased_among(session: Session, digests: Iterable[str]) -> set[str]:
    wanted = set(digests)
    if not wanted:
        return set()
    stmt = select(ErasedIdentity.digest).where(ErasedIdentity.digest.in_(wanted))
    return set(session.scalars(stmt))


def erased_profile(session: Session, kind: str, value: str) -> ErasedIdentity | None:
    """The erasure an identity went with, if it did."""
    return session.get(ErasedIdentity, digest(kind, value))


def remember(
    session: Session, keys: Iterable[tuple[str, str]], profile_id: str, at: datetime
) -> None:
    """Keep the keyed hash of each identity; one already kept (a second erasure) stays as is."""
    rows = [
        {"digest": digest(kind, value), "profile_id": profile_id, "erased_at": at}
        for kind, value in keys
    ]
    if rows:
        stmt = dialect_insert(session)(ErasedIdentity).on_conflict_do_nothing()
        session.execute(stmt, rows)
