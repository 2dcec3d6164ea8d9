"""Incremental evaluation: an event updates its person's computed traits and segment
memberships in its routing transaction; a window's expiry recomputes only the traits due.

Nothing here reads anybody but the one person: a running aggregate (count, sum, min, max,
first, last over all time) folds the event into its stored value, and a windowed or distinct
trait keeps each event's (time, value) and adds up only that person's kept events, dropping
those out of the window. A windowed trait's row carries `expires_at`, when its oldest kept
event leaves the window: the scheduler's `expiry` fires it then, like a journey timer.

Work on one person is serialized by the profile row's lock: routing holds it from the moment
it updates the profile (`profiles.repository.touch`), the expiry claims it with SKIP LOCKED,
so two workers never fold the same trait from the same old value.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from app import clock
from app.events.models import Event
from app.journeys.conditions import ConditionEvalError, holds
from app.profiles.models import Profile
from app.profiles.view import views
from app.segments import catalog
from app.segments.aggregates import MISSING, extract, fold, over
from app.segments.definition import AggregateTrait, Definitions, Segment
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


def counts(trait: AggregateTrait, payload: dict[str, Any]) -> bool:
    """Whether the trait counts an event with this payload (its `where` holds)."""
    if trait.where is None:
        return True
    return holds(trait.where, {"event": payload, "profile": {}}, f"trait {trait.name}")


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
    _settle(trait, rows, profile_id, [(at, value) for at, value in kept])


def _settle(
    trait: AggregateTrait,
    rows: dict[str, ComputedTrait],
    profile_id: str,
    kept: list[tuple[datetime, Any]],
) -> None:
    """A kept-per-event trait's value and due time from its kept events, oldest first."""
    row = _row(rows, profile_id, trait.name)
    row.value = over(trait.kind, kept)
    row.expires_at = kept[0][0] + trait.within if kept and trait.within is not None else None


def _take(
    session: Session, trait: AggregateTrait, rows: dict[str, ComputedTrait], event: Event
) -> TraitEvent | None:
    """Fold the event into a running aggregate, or keep its value for a kept-per-event one;
    the kept value, if any (the trait then needs a recount)."""
    profile_id = str(event.profile_id)
    item = None if trait.kind == "count" else extract(event.payload, event.timestamp, trait.of)
    if item is MISSING:
        return None
    if not trait.kept_per_event:
        row = _row(rows, profile_id, trait.name)
        row.value, row.state = fold(trait.kind, row.value, row.state, item, event.timestamp)
        return None
    if trait.within is not None and event.timestamp <= clock.now() - trait.within:
        return None  # arrived after its window closed: it never counts
    kept = TraitEvent(profile_id=profile_id, name=trait.name, at=event.timestamp, value=item)
    session.add(kept)
    return kept


def _add(
    session: Session, trait: AggregateTrait, rows: dict[str, ComputedTrait], event: Event
) -> None:
    if _take(session, trait, rows, event) is not None:
        session.flush()
        recount(session, trait, rows, str(event.profile_id))


def derived_values(
    definitions: Definitions, stored: dict[str, Any], profile_id: str
) -> dict[str, Any]:
    """Each `compute` trait's value from the stored values, each after the ones it reads; one
    that cannot be evaluated has no value, None (as a missing property leaves a condition
    unmet)."""
    values = computed_of(definitions, stored)
    found = {}
    for trait in definitions.derived:
        try:
            value = trait.expression.value({"profile": {"computed": values}, "event": {}})
        except ConditionEvalError as exc:
            log.info("trait %s of %s has no value: %s", trait.name, profile_id, exc)
            value = None
        found[trait.name] = value
        if value is None:
            values.pop(trait.name, None)
        else:
            values[trait.name] = value
    return found


def derive(definitions: Definitions, rows: dict[str, ComputedTrait], profile_id: str) -> None:
    """The `compute` traits again, a row changed only where its value did."""
    if not definitions.derived:
        return
    stored = {name: row.value for name, row in rows.items()}
    for name, value in derived_values(definitions, stored, profile_id).items():
        row = rows.get(name)
        if row is None and value is None:
            continue
        if row is None or row.value != value:
            _row(rows, profile_id, name).value = value


def memberships(
    session: Session, definitions: Definitions, profile: Profile, rows: dict[str, ComputedTrait]
) -> Decided:
    """Who the person is now: each segment whose `when` holds, and the first stage that does;
    the rows changed to match, and each change returned."""
    return decide(session, definitions, [profile], {profile.id: rows})[profile.id]


def decide(
    session: Session,
    definitions: Definitions,
    profiles: Sequence[Profile],
    rows: dict[str, dict[str, ComputedTrait]],
) -> dict[str, Decided]:
    """`memberships` for many people at once, by id: three queries and one flush however
    many they are, so a backfill does not pay a round trip per person."""
    ids = [profile.id for profile in profiles]
    existing: dict[str, dict[str, Membership]] = {profile_id: {} for profile_id in ids}
    for row in session.scalars(select(Membership).where(Membership.profile_id.in_(ids))):
        existing[row.profile_id][row.segment_id] = row
    stored = {
        profile_id: {name: row.value for name, row in rows[profile_id].items()}
        for profile_id in ids
    }
    before = {
        profile_id: cdp_of(
            definitions,
            stored[profile_id],
            [(row.segment_id, row.stage) for row in existing[profile_id].values()],
        )
        for profile_id in ids
    }
    people = views(session, profiles, before)
    known = {segment.id for segment in definitions.every_segment}
    now = clock.now()
    decided = {}
    for profile_id in ids:
        person = people[profile_id]
        now_in = inside(definitions, person)
        flips = []
        for segment_id, row in existing[profile_id].items():
            if segment_id not in now_in:
                session.delete(row)
                if segment_id in known:  # a segment whose file is gone: no one "leaves" it
                    flips.append(Flip(segment_id, "exit", row.stage))
        for segment_id, is_stage in now_in.items():
            if segment_id not in existing[profile_id]:
                session.add(
                    Membership(
                        profile_id=profile_id, segment_id=segment_id, stage=is_stage, entered_at=now
                    )
                )
                flips.append(Flip(segment_id, "enter", is_stage))
        person.update(cdp_of(definitions, stored[profile_id], list(now_in.items())))
        decided[profile_id] = Decided(flips, person)
    session.flush()
    return decided


def inside(definitions: Definitions, person: dict[str, Any]) -> dict[str, bool]:
    """The segments (False) and the one stage (True) whose `when` holds for the person."""
    variables = {"profile": person, "event": {}}
    inside = {s.id: False for s in definitions.segments if _holds(s, variables)}
    for stage in definitions.stages:
        if _holds(stage, variables):
            inside[stage.id] = True
            break
    return inside


# What a rule that reads computed traits only gave for their values, by its text and those
# values: CEL costs milliseconds a rule, and most people share a handful of values (a count
# of 0, 1 or 2), so routing and backfills evaluate each rule once per combination, not once
# per person. Cleared when full, so it never grows past this.
_ANSWERS: dict[tuple[str, ...], bool] = {}
ANSWERS_KEPT = 100_000


def _holds(segment: Segment, variables: dict[str, Any]) -> bool:
    what = f"{'stage' if segment.stage else 'segment'} {segment.id}"
    if segment.when is None or segment.reads is None:
        return holds(segment.when, variables, what)
    computed = variables["profile"]["computed"]
    key = (
        segment.when.source,
        *(json.dumps([n in computed, computed.get(n)]) for n in segment.reads),
    )
    answer = _ANSWERS.get(key)
    if answer is None:
        answer = holds(segment.when, variables, what)
        if len(_ANSWERS) >= ANSWERS_KEPT:
            _ANSWERS.clear()
        _ANSWERS[key] = answer
    return answer


def on_event(session: Session, profile: Profile, event: Event) -> Decided | None:
    """The event's effect on its person's computed traits and memberships (in the routing
    transaction, which holds the person's row since `profiles.apply_event`); None when no
    segment or trait concerns it."""
    definitions = catalog.current(session)
    if not definitions.aggregates and not definitions.every_segment:
        return None
    feeds = definitions.by_event.get(event.name or "", ()) if event.type == "track" else ()
    counted = [trait for trait in feeds if counts(trait, event.payload)]
    if not counted and not definitions.every_segment:
        return None
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
