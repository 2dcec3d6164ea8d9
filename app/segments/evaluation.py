"""Incremental evaluation: an event updates its person's computed traits and segment
memberships in its routing transaction; a window's expiry recomputes only the traits due.

Nothing here reads anybody but the one person: a running aggregate (count, sum, min, max,
first, last over all time) folds the event into its stored value, and a windowed or distinct
trait keeps each event's (time, value) and adds up only that person's kept events, dropping
those out of the window. A windowed trait's row carries `expires_at`, when its oldest kept
event leaves the window: the scheduler's `expiry` fires it then, like a journey timer.

Work on one person is serialized by the profile row's lock: routing holds it from the moment
it updates the profile (and takes it here again explicitly), the expiry claims it with SKIP
LOCKED, so two workers never fold the same trait from the same old value.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from app import clock
from app.db import is_postgres
from app.events.models import Event
from app.journeys.conditions import ConditionEvalError, holds
from app.profiles.models import Profile
from app.profiles.view import view
from app.segments import catalog
from app.segments.aggregates import MISSING, extract, fold, over
from app.segments.definition import AggregateTrait, Definitions
from app.segments.models import ComputedTrait, Membership, TraitEvent
from app.segments.reading import cdp_of, computed_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Flip:
    """A person entered or left a segment (or a lifecycle stage)."""

    segment_id: str
    on: str  # enter | exit
    stage: bool


@dataclass(frozen=True)
class Decided:
    """A person's memberships decided again: what changed, and the person as they are now,
    which the journeys a change starts read without reading back what was just written."""

    flips: list[Flip]
    person: dict[str, Any]


def lock_person(session: Session, profile_id: str) -> None:
    """Hold the profile row until commit (PostgreSQL; SQLite has one writer at a time)."""
    if is_postgres(session):
        session.execute(select(Profile.id).where(Profile.id == profile_id).with_for_update())


def _rows(session: Session, profile_id: str) -> dict[str, ComputedTrait]:
    stmt = select(ComputedTrait).where(ComputedTrait.profile_id == profile_id)
    return {row.name: row for row in session.scalars(stmt)}


def _row(rows: dict[str, ComputedTrait], profile_id: str, name: str) -> ComputedTrait:
    row = rows.get(name)
    if row is None:
        row = ComputedTrait(profile_id=profile_id, name=name, value=None, state=None)
        rows[name] = row
    row.updated_at = clock.now()
    return row


def _counts(trait: AggregateTrait, event: Event) -> bool:
    if trait.where is None:
        return True
    return holds(trait.where, {"event": event.payload, "profile": {}}, f"trait {trait.name}")


def recount(
    session: Session, trait: AggregateTrait, rows: dict[str, ComputedTrait], profile_id: str
) -> None:
    """A kept-per-event trait from its kept events: those out of the window are dropped, the
    rest added up, and the row's due time set to when the oldest of them leaves."""
    now = clock.now()
    mine = (TraitEvent.profile_id == profile_id) & (TraitEvent.name == trait.name)
    if trait.within is not None:
        session.execute(delete(TraitEvent).where(mine, TraitEvent.at <= now - trait.within))
    kept = session.execute(
        select(TraitEvent.at, TraitEvent.value).where(mine).order_by(TraitEvent.at, TraitEvent.id)
    ).all()
    row = _row(rows, profile_id, trait.name)
    row.value = over(trait.kind, [(at, value) for at, value in kept])
    row.expires_at = kept[0].at + trait.within if kept and trait.within is not None else None


def _take(
    session: Session, trait: AggregateTrait, rows: dict[str, ComputedTrait], event: Event
) -> bool:
    """Fold the event into a running aggregate, or keep its value for a kept-per-event one;
    whether a value was kept (the trait then needs a recount)."""
    profile_id = str(event.profile_id)
    item = None if trait.kind == "count" else extract(event.payload, event.timestamp, trait.of)
    if item is MISSING:
        return False
    if not trait.kept_per_event:
        row = _row(rows, profile_id, trait.name)
        row.value, row.state = fold(trait.kind, row.value, row.state, item, event.timestamp)
        return False
    if trait.within is not None and event.timestamp <= clock.now() - trait.within:
        return False  # arrived after its window closed: it never counts
    session.add(TraitEvent(profile_id=profile_id, name=trait.name, at=event.timestamp, value=item))
    return True


def _add(
    session: Session, trait: AggregateTrait, rows: dict[str, ComputedTrait], event: Event
) -> None:
    if _take(session, trait, rows, event):
        session.flush()
        recount(session, trait, rows, str(event.profile_id))


def derive(definitions: Definitions, rows: dict[str, ComputedTrait], profile_id: str) -> None:
    """The `compute` traits, each after the ones it reads; one that cannot be evaluated has
    no value (as a missing property leaves a condition unmet)."""
    if not definitions.derived:
        return
    values = computed_of(definitions, {name: row.value for name, row in rows.items()})
    for trait in definitions.derived:
        try:
            value = trait.expression.value({"profile": {"computed": values}, "event": {}})
        except ConditionEvalError as exc:
            log.info("trait %s of %s has no value: %s", trait.name, profile_id, exc)
            value = None
        row = rows.get(trait.name)
        if row is None and value is None:
            continue
        if row is None or row.value != value:
            _row(rows, profile_id, trait.name).value = value
        if value is None:
            values.pop(trait.name, None)
        else:
            values[trait.name] = value


def memberships(
    session: Session, definitions: Definitions, profile: Profile, rows: dict[str, ComputedTrait]
) -> Decided:
    """Who the person is now: each segment whose `when` holds, and the first stage that does;
    the rows changed to match, and each change returned."""
    existing = {
        row.segment_id: row
        for row in session.scalars(select(Membership).where(Membership.profile_id == profile.id))
    }
    stored = {name: row.value for name, row in rows.items()}
    before = [(row.segment_id, row.stage) for row in existing.values()]
    person = view(session, profile, cdp_of(definitions, stored, before))
    variables = {"profile": person, "event": {}}
    inside = {
        s.id: False for s in definitions.segments if holds(s.when, variables, f"segment {s.id}")
    }
    for stage in definitions.stages:
        if holds(stage.when, variables, f"stage {stage.id}"):
            inside[stage.id] = True
            break
    known = {segment.id for segment in definitions.every_segment}
    flips = []
    for segment_id, row in existing.items():
        if segment_id not in inside:
            session.delete(row)
            if segment_id in known:  # a segment whose file is gone: no one "leaves" it
                flips.append(Flip(segment_id, "exit", row.stage))
    now = clock.now()
    for segment_id, is_stage in inside.items():
        if segment_id not in existing:
            session.add(
                Membership(
                    profile_id=profile.id, segment_id=segment_id, stage=is_stage, entered_at=now
                )
            )
            flips.append(Flip(segment_id, "enter", is_stage))
    session.flush()
    person.update(cdp_of(definitions, stored, list(inside.items())))
    return Decided(flips, person)


def on_event(session: Session, profile: Profile, event: Event) -> Decided | None:
    """The event's effect on its person's computed traits and memberships (in the routing
    transaction, under the person's lock); None when no segment or trait concerns it."""
    definitions = catalog.current(session)
    if not definitions.aggregates and not definitions.every_segment:
        return None
    feeds = definitions.by_event.get(event.name or "", ()) if event.type == "track" else ()
    counted = [trait for trait in feeds if _counts(trait, event)]
    if not counted and not definitions.every_segment:
        return None
    lock_person(session, profile.id)
    rows = _rows(session, profile.id)
    for trait in counted:
        _add(session, trait, rows, event)
    if counted:
        derive(definitions, rows, profile.id)
    _persist(session, rows)
    return memberships(session, definitions, profile, rows)


def recompute(
    session: Session, definitions: Definitions, profile: Profile, names: Iterable[str]
) -> Decided:
    """The named windowed traits of one person again (their window moved), then what depends
    on them. The caller holds the person's lock."""
    rows = _rows(session, profile.id)
    for name in names:
        trait = definitions.aggregates.get(name)
        if trait is not None and trait.kept_per_event:
            recount(session, trait, rows, profile.id)
        elif name in rows:
            rows[name].expires_at = None  # its definition changed or went: nothing to age
    derive(definitions, rows, profile.id)
    _persist(session, rows)
    return memberships(session, definitions, profile, rows)


def rebuild(
    session: Session, definitions: Definitions, profile: Profile, names: Iterable[str]
) -> Decided:
    """The named traits of one person from scratch, from their stored (routed) events, then
    what depends on them and their memberships: a new or edited segment file's backfill. The
    caller holds the person's lock, so no event of theirs is being routed meanwhile; an event
    routed later is not among those read here, so nothing counts twice."""
    traits = [definitions.aggregates[n] for n in names if n in definitions.aggregates]
    mine = [trait.name for trait in traits]
    session.execute(
        delete(TraitEvent).where(TraitEvent.profile_id == profile.id, TraitEvent.name.in_(mine))
    )
    session.execute(
        delete(ComputedTrait).where(
            ComputedTrait.profile_id == profile.id, ComputedTrait.name.in_(mine)
        )
    )
    rows = _rows(session, profile.id)
    feeds: dict[str, list[AggregateTrait]] = {}
    for trait in traits:
        feeds.setdefault(trait.event, []).append(trait)
    events = session.scalars(
        select(Event)
        .where(
            Event.profile_id == profile.id,
            Event.type == "track",
            Event.name.in_(feeds),
            Event.processed_at.is_not(None),
        )
        .order_by(Event.timestamp, Event.id)
    )
    for event in events:
        for trait in feeds[event.name or ""]:
            if _counts(trait, event):
                _take(session, trait, rows, event)
    _persist(session, rows)
    return recompute(session, definitions, profile, names)


def _persist(session: Session, rows: dict[str, ComputedTrait]) -> None:
    for row in rows.values():
        if row not in session:
            session.add(row)
    session.flush()


def merge(session: Session, source_id: str, target_id: str) -> None:
    """On a profile merge, the person's computed traits follow them: kept events move and are
    added up again, running aggregates are combined, memberships are decided again on the
    target's next event (the source's rows go, with no journey told: the person did not
    leave anything, they were found to be someone else)."""
    definitions = catalog.current(session)
    session.execute(
        update(TraitEvent).where(TraitEvent.profile_id == source_id).values(profile_id=target_id)
    )
    source, target = _rows(session, source_id), _rows(session, target_id)
    for name, row in source.items():
        trait = definitions.aggregates.get(name)
        if trait is None or trait.kept_per_event:
            continue
        into = _row(target, target_id, name)
        into.value, into.state = _combine(trait, into.value, into.state, row.value, row.state)
    for trait in definitions.aggregates.values():
        if trait.kept_per_event and (trait.name in source or trait.name in target):
            recount(session, trait, target, target_id)
    derive(definitions, target, target_id)
    _persist(session, target)
    session.execute(delete(ComputedTrait).where(ComputedTrait.profile_id == source_id))
    session.execute(delete(Membership).where(Membership.profile_id == source_id))


def _combine(
    trait: AggregateTrait, value: Any, state: Any, other: Any, other_state: Any
) -> tuple[Any, Any]:
    if other is None:
        return value, state
    if value is None:
        return other, other_state
    if trait.kind in ("count", "sum"):
        return value + other, state
    if trait.kind in ("first", "last"):
        if not isinstance(other_state, dict):
            return value, state
        return fold(trait.kind, value, state, other, datetime.fromisoformat(other_state["at"]))
    return fold(trait.kind, value, state, other, clock.now())
