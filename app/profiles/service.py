"""Identity resolution, trait updates and merges: one consistent profile per person.

Every event is resolved to a profile under per-identity locks, so concurrent workers see a
person's identities change one event at a time. Traits are last-write-wins by event
timestamp (see `repository.upsert_traits`), so late or shuffled events converge.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from app import clock
from app.delivery.models import Delivery
from app.events.models import Event
from app.journeys import lifecycle
from app.profiles import erased
from app.profiles import repository as repo
from app.profiles.models import ANONYMOUS_ID, CONTACT_TRAITS, USER_ID, Identity, Profile
from app.segments import evaluation as segments

log = logging.getLogger(__name__)


def _create(session: Session, keys: list[tuple[str, str]]) -> Profile:
    now = clock.now()
    profile = Profile(id=str(uuid.uuid4()), created_at=now, updated_at=now)
    session.add(profile)
    session.flush()
    for kind, value in keys:
        _attach(session, profile.id, kind, value)
    return profile


def _attach(session: Session, profile_id: str, kind: str, value: str) -> None:
    session.add(Identity(kind=kind, value=value, profile_id=profile_id, created_at=clock.now()))
    session.flush()


def _has_user_id(session: Session, profile_id: str) -> bool:
    stmt = select(exists().where(Identity.profile_id == profile_id, Identity.kind == USER_ID))
    return bool(session.scalar(stmt))


def merge(session: Session, source_id: str, target_id: str) -> None:
    """Fold profile `source_id` into `target_id`: identities, traits, history, journeys."""
    if source_id == target_id:
        return
    log.info("merging profile %s into %s", source_id, target_id)
    lifecycle.move_instances(session, source_id, target_id)
    repo.repoint(session, Identity.profile_id, source_id, target_id)
    repo.repoint(session, Event.profile_id, source_id, target_id)
    repo.repoint(session, Delivery.profile_id, source_id, target_id)
    repo.move_traits(session, source_id, target_id)
    segments.merge(session, source_id, target_id)
    source = session.get(Profile, source_id)
    if source is not None:
        source.merged_into = target_id
        source.updated_at = clock.now()


def _resolve(session: Session, user_id: str | None, anonymous_id: str | None) -> Profile:
    keys = [(k, v) for k, v in ((USER_ID, user_id), (ANONYMOUS_ID, anonymous_id)) if v]
    found = {i.kind: i for i in repo.find_identities(session, keys)}
    known, anon = found.get(USER_ID), found.get(ANONYMOUS_ID)
    if known and anon:
        if anon.profile_id != known.profile_id and not _has_user_id(session, anon.profile_id):
            merge(session, anon.profile_id, known.profile_id)
        return _get(session, known.profile_id)
    if known:
        if anonymous_id:
            _attach(session, known.profile_id, ANONYMOUS_ID, anonymous_id)
        return _get(session, known.profile_id)
    if anon:
        if not user_id:
            return _get(session, anon.profile_id)
        if not _has_user_id(session, anon.profile_id):
            # The anonymous visitor identified: their history becomes the known profile's.
            _attach(session, anon.profile_id, USER_ID, user_id)
            return _get(session, anon.profile_id)
        # A shared device: this anonymousId already belongs to another known person.
        return _create(session, [(USER_ID, user_id)])
    return _create(session, keys)


def _alias(session: Session, user_id: str, previous_id: str) -> Profile:
    """Segment's alias: `previousId` and `userId` are the same person; merge them."""
    current = repo.find_identities(session, [(USER_ID, user_id)])
    previous = repo.find_identities(session, [(USER_ID, previous_id), (ANONYMOUS_ID, previous_id)])
    if not current and not previous:
        return _create(session, [(USER_ID, user_id), (ANONYMOUS_ID, previous_id)])
    target_id = current[0].profile_id if current else previous[0].profile_id
    if not current:
        _attach(session, target_id, USER_ID, user_id)
    for identity in previous:
        merge(session, identity.profile_id, target_id)
    return _get(session, target_id)


def _get(session: Session, profile_id: str) -> Profile:
    return session.get_one(Profile, profile_id)  # an identity always points at its profile


def _claim_contacts(session: Session, profile_id: str, traits: dict[str, Any]) -> None:
    """Make e-mail and phone identities of this profile unless another profile holds them
    (two customers may share an address; we never merge people on a contact alone)."""
    values = ((k, str(traits[k]).strip()) for k in CONTACT_TRAITS if traits.get(k))
    keys = [(kind, value) for kind, value in values if value]  # "  " is no address
    owned = {(i.kind, i.value) for i in repo.find_identities(session, keys)}
    for kind, value in keys:
        if (kind, value) not in owned:
            _attach(session, profile_id, kind, value)


def _previous_id(event: Event) -> str | None:
    return event.payload.get("previousId") if event.type == "alias" else None


def _traits(event: Event) -> dict[str, Any] | None:
    return event.payload.get("traits") if event.type == "identify" else None


def _erased_keys(event: Event) -> list[tuple[str, str]]:
    return erased.event_keys(event.user_id, event.anonymous_id, _traits(event), _previous_id(event))


def lock_people(session: Session, events: Sequence[Event]) -> set[str]:
    """Lock every identity `events` name, all at once: what `apply_event` needs held.
    Returns the erased-identity hashes among the identities they name, read under the locks
    an erasure also takes (once it has committed, its hashes are seen here), for the whole
    batch in one query."""
    keys = []
    for event in events:
        keys += [(USER_ID, event.user_id), (ANONYMOUS_ID, event.anonymous_id)]
        previous_id = _previous_id(event)
        if previous_id:
            keys += [(USER_ID, previous_id), (ANONYMOUS_ID, previous_id)]
    repo.lock_identities(session, [(k, v) for k, v in keys if v])
    named = {erased.digest(kind, value) for event in events for kind, value in _erased_keys(event)}
    return erased.erased_among(session, named)


def apply_event(session: Session, event: Event, erased_digests: set[str]) -> Profile | None:
    """Resolve `event` to its profile, creating or merging profiles, and apply its traits;
    None when the event names an erased person (ingest drops those, but this one was stored
    while the erasure committed). The caller holds `lock_people` for it, and passes the
    erased hashes that call returned. From here to the commit the transaction also holds the
    profile's row (see `repository.touch`)."""
    previous_id = _previous_id(event)
    traits = _traits(event)
    if erased_digests and any(
        erased.digest(kind, value) in erased_digests for kind, value in _erased_keys(event)
    ):
        return None
    if previous_id and event.user_id:
        profile = _alias(session, event.user_id, previous_id)
    else:
        profile = _resolve(session, event.user_id, event.anonymous_id)

    if traits:
        repo.upsert_traits(session, profile.id, traits, event.timestamp, event.message_id)
        _claim_contacts(session, profile.id, traits)
    repo.touch(session, profile)
    return profile
