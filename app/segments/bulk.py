"""A segment file's traits rebuilt for a whole batch of people at once: the backfill of a new
or edited file (`backfill`), which reaches a million people, so nothing here is done person
by person that a statement can do for the batch.

Each trait is one statement over the batch's events: an aggregate grouped by person (count,
min, max over all time or the window; first and last as the first row of each person's
ordered events), and a window's kept events copied by INSERT ... SELECT. A trait SQL cannot
give exactly is folded in Python over its events' fetched columns, with the very functions
routing folds one event with (`aggregates`): a `where` (CEL on the event), a `sum` (a float
total depends on the order it is added in), a `distinct` (1 and 1.0, true and 1 are one
value), a window's first or last `timestamp` (the text is Python's), and a running min or
max whose person has both numbers and texts (the first of them decides which it keeps).

The rows are written with bulk INSERTs, no ORM object each; memberships are decided with the
rule answers kept per combination of values, so a person costs what their rules read.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Numeric,
    String,
    any_,
    cast,
    column,
    delete,
    func,
    insert,
    literal,
    null,
    select,
    tuple_,
    type_coerce,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import InstrumentedAttribute, Session

from app import clock
from app.db import Base, JSONType, dialect_insert, is_postgres
from app.events.models import Event
from app.profiles.models import Profile
from app.profiles.view import views
from app.segments.aggregates import MISSING, extract, fold, over
from app.segments.definition import AggregateTrait, Definitions
from app.segments.evaluation import counts, derived_values, inside
from app.segments.models import ComputedTrait, Membership, TraitEvent
from app.segments.reading import cdp_of, computed_of

# What jsonb_typeof (PostgreSQL) and json_type (SQLite) call a number and a text.
NUMBER = ("number", "integer", "real")
TEXT = ("string", "text")
GROUPED = frozenset({"count", "min", "max", "first", "last"})

# A trait's row: value, state, expires_at.
Row = tuple[Any, Any, datetime | None]


class _Path:
    """An event's value at a path, in the session's SQL: as JSON, its JSON type, as a number
    and as a text (compared by code point, as Python compares texts)."""

    def __init__(self, postgres: bool, path: tuple[str, ...]) -> None:
        self.postgres, self.parts = postgres, path
        if postgres:
            self._raw: ColumnElement[Any] = func.jsonb_extract_path(Event.payload, *path)
        else:
            self._path = "$" + "".join(f'."{part}"' for part in path)
            self._raw = Event.payload.op("->")(self._path)

    @property
    def value(self) -> ColumnElement[Any]:
        return type_coerce(self._raw, JSONType)

    @property
    def kind(self) -> ColumnElement[str]:
        if self.postgres:
            return func.jsonb_typeof(self._raw)
        return func.json_type(Event.payload, self._path)

    @property
    def number(self) -> ColumnElement[Any]:
        if self.postgres:
            return cast(self._raw, Numeric)
        return func.json_extract(Event.payload, self._path)

    @property
    def text(self) -> ColumnElement[Any]:
        if self.postgres:
            return func.jsonb_extract_path_text(Event.payload, *self.parts).collate("C")
        return func.json_extract(Event.payload, self._path)


def among(
    postgres: bool, column: InstrumentedAttribute[Any], ids: Sequence[str]
) -> ColumnElement[bool]:
    """`column IN ids`; on PostgreSQL one array parameter, not one parameter per person (the
    driver's cost of a statement grows with its parameters)."""
    if postgres:
        return column == any_(literal(list(ids), ARRAY(String)))
    return column.in_(ids)


def write(session: Session, model: type[Base], rows: list[dict[str, Any]]) -> None:
    """INSERT the rows (each with the same keys), skipping those already there; on PostgreSQL
    one statement whose rows arrive as one JSON document (the driver adapts a document far
    faster than a parameter a value)."""
    if not rows:
        return
    if not is_postgres(session):
        session.execute(sqlite.insert(model).on_conflict_do_nothing(), rows)
        return
    names = list(rows[0])
    document = cast(literal(json.dumps(rows, default=datetime.isoformat)), JSONB)
    types = model.__table__.c
    given = (
        func.jsonb_to_recordset(document)
        .table_valued(*(column(name, types[name].type) for name in names))
        .render_derived(with_types=True)
    )
    stmt = postgresql.insert(model).from_select(names, select(*given.c))
    session.execute(stmt.on_conflict_do_nothing())


def in_sql(trait: AggregateTrait) -> bool:
    """Whether an aggregate of SQL gives exactly what folding the events one by one gives."""
    if trait.where is not None or trait.kind not in GROUPED:
        return False
    return not (trait.kept_per_event and trait.of == ("timestamp",))


def _events(
    postgres: bool, trait: AggregateTrait, ids: Sequence[str], now: datetime
) -> list[ColumnElement[bool]]:
    """The routed events of these people that feed the trait (in its window, if it has one)."""
    where = [
        among(postgres, Event.profile_id, ids),
        Event.type == "track",
        Event.name == trait.event,
        Event.processed_at.is_not(None),
    ]
    if trait.within is not None:
        where.append(Event.timestamp > now - trait.within)
    return where


def _plain(number: Any) -> Any:
    """A number as JSON gave it: PostgreSQL's numeric keeps whether it had decimals."""
    if not isinstance(number, Decimal):
        return number
    exponent = number.as_tuple().exponent
    return int(number) if isinstance(exponent, int) and exponent >= 0 else float(number)


def _expiry(trait: AggregateTrait, oldest: datetime | None) -> datetime | None:
    return oldest + trait.within if oldest is not None and trait.within is not None else None


def _grouped(
    session: Session, trait: AggregateTrait, ids: Sequence[str], now: datetime
) -> dict[str, Row]:
    """The trait of each person of the batch who has a counted event, by SQL; the window's
    kept events copied alongside."""
    path = _Path(is_postgres(session), trait.of)
    where = _events(is_postgres(session), trait, ids, now)
    if trait.kind != "count" and trait.of != ("timestamp",):
        where.append(path.kind != "null")  # no such value (or null): the event is skipped
    if trait.kept_per_event:
        value = null() if trait.kind == "count" else path.value
        kept = select(Event.profile_id, literal(trait.name), Event.timestamp, value)
        session.execute(
            insert(TraitEvent).from_select(
                ["profile_id", "name", "at", "value"],
                kept.where(*where).order_by(Event.timestamp, Event.id),
            )
        )
    if trait.kind in ("first", "last"):
        return _picked(session, trait, path, where)
    oldest = func.min(Event.timestamp)
    if trait.kind == "count":
        stmt = select(Event.profile_id, oldest, func.count(), null())
    else:
        pick = func.min if trait.kind == "min" else func.max
        numbers = pick(path.number).filter(path.kind.in_(NUMBER))
        texts = pick(path.text).filter(path.kind.in_(TEXT))
        stmt = select(Event.profile_id, oldest, numbers, texts)
    found: dict[str, Row] = {}
    mixed: list[str] = []
    for profile_id, first_at, number, text in session.execute(
        stmt.where(*where).group_by(Event.profile_id)
    ):
        if number is not None and text is not None and not trait.kept_per_event:
            mixed.append(str(profile_id))  # which one the running value keeps depends on order
            continue
        value = _plain(number) if number is not None else text
        found[str(profile_id)] = (value, None, _expiry(trait, first_at))
    if mixed:
        found.update(_folded(session, trait, mixed, now))
    return found


def _picked(
    session: Session, trait: AggregateTrait, path: _Path, where: list[ColumnElement[bool]]
) -> dict[str, Row]:
    """A first or last: each person's earliest or latest counted event, ties by arrival."""
    if trait.kind == "last":
        order = (Event.timestamp.desc(), Event.id.desc())
    else:
        order = (Event.timestamp.asc(), Event.id.asc())
    ranked = (
        select(
            Event.profile_id,
            Event.timestamp,
            null() if trait.of == ("timestamp",) else path.value.label("value"),
            func.row_number().over(partition_by=Event.profile_id, order_by=order).label("rank"),
            func.min(Event.timestamp).over(partition_by=Event.profile_id).label("oldest"),
        )
        .where(*where)
        .subquery()
    )
    stmt = select(*ranked.c).where(ranked.c.rank == 1)
    found: dict[str, Row] = {}
    for profile_id, at, value, _, oldest in session.execute(stmt):
        if trait.of == ("timestamp",):
            value = at.isoformat()
        state = None if trait.kept_per_event else {"at": at.isoformat()}
        found[profile_id] = (value, state, _expiry(trait, oldest))
    return found


def _folded(
    session: Session, trait: AggregateTrait, ids: Sequence[str], now: datetime
) -> dict[str, Row]:
    """The trait of each person with a counted event, folded in Python over their events in
    the order routing folds them (their time, then arrival); the kept ones written."""
    rows = session.execute(
        select(Event.profile_id, Event.timestamp, Event.payload)
        .where(*_events(is_postgres(session), trait, ids, now))
        .order_by(Event.timestamp, Event.id)
    )
    running: dict[str, tuple[Any, Any]] = {}
    kept: dict[str, list[tuple[datetime, Any]]] = {}
    for profile_id, at, payload in rows:
        if not counts(trait, payload):
            continue
        item = None if trait.kind == "count" else extract(payload, at, trait.of)
        if item is MISSING:
            continue
        if trait.kept_per_event:
            kept.setdefault(profile_id, []).append((at, item))
        else:
            value, state = running.get(profile_id, (None, None))
            running[profile_id] = fold(trait.kind, value, state, item, at)
    if kept:
        write(
            session,
            TraitEvent,
            [
                {"profile_id": profile_id, "name": trait.name, "at": at, "value": item}
                for profile_id, items in kept.items()
                for at, item in items
            ],
        )
    found: dict[str, Row] = {
        profile_id: (value, state, None) for profile_id, (value, state) in running.items()
    }
    for profile_id, items in kept.items():
        found[profile_id] = (over(trait.kind, items), None, _expiry(trait, items[0][0]))
    return found


def rebuild(
    session: Session, definitions: Definitions, ids: Sequence[str], names: Sequence[str]
) -> None:
    """The named traits of these people from scratch, from their stored (routed) events, then
    the `compute` traits and their memberships. The caller holds the people's locks, so no
    event of theirs is being routed meanwhile; one routed later is not among those read
    here, so nothing counts twice. No journey starts: no change is returned."""
    now, postgres = clock.now(), is_postgres(session)
    traits = [definitions.aggregates[n] for n in names if n in definitions.aggregates]
    mine = [trait.name for trait in traits]
    session.execute(
        delete(TraitEvent).where(
            among(postgres, TraitEvent.profile_id, ids), TraitEvent.name.in_(mine)
        )
    )
    session.execute(
        delete(ComputedTrait).where(
            among(postgres, ComputedTrait.profile_id, ids), ComputedTrait.name.in_(mine)
        )
    )
    others = set(names) - set(mine)
    if others:  # no longer an aggregate here: nothing of it is left to age
        session.execute(
            update(ComputedTrait)
            .where(among(postgres, ComputedTrait.profile_id, ids), ComputedTrait.name.in_(others))
            .values(expires_at=None)
        )
    stored: dict[str, dict[str, Any]] = {profile_id: {} for profile_id in ids}
    rows = session.execute(
        select(ComputedTrait.profile_id, ComputedTrait.name, ComputedTrait.value).where(
            among(postgres, ComputedTrait.profile_id, ids)
        )
    )
    for profile_id, name, value in rows:
        stored[profile_id][name] = value
    written = []
    for trait in traits:
        found = (_grouped if in_sql(trait) else _folded)(session, trait, ids, now)
        if trait.kept_per_event:  # a window's row is there for everybody: it reads 0 or none
            nothing: Row = (over(trait.kind, []), None, None)
            found = {profile_id: found.get(profile_id, nothing) for profile_id in ids}
        for profile_id, (value, state, expires_at) in found.items():
            stored[profile_id][trait.name] = value
            written.append(
                {
                    "profile_id": profile_id,
                    "name": trait.name,
                    "value": value,
                    "state": state,
                    "expires_at": expires_at,
                    "updated_at": now,
                }
            )
    if written:
        write(session, ComputedTrait, written)
    _derive(session, definitions, stored, now)
    _decide(session, definitions, ids, stored, now)


def _derive(
    session: Session, definitions: Definitions, stored: dict[str, dict[str, Any]], now: datetime
) -> None:
    """The `compute` traits of each person again, those that changed written in one upsert."""
    if not definitions.derived:
        return
    changed = []
    for profile_id, values in stored.items():
        for name, value in derived_values(definitions, values, profile_id).items():
            if values[name] != value if name in values else value is not None:
                changed.append(
                    {"profile_id": profile_id, "name": name, "value": value, "updated_at": now}
                )
            if value is not None or name in values:
                values[name] = value
    if changed:
        stmt = dialect_insert(session)(ComputedTrait)
        stmt = stmt.on_conflict_do_update(
            index_elements=[ComputedTrait.profile_id, ComputedTrait.name],
            set_={"value": stmt.excluded.value, "updated_at": now},
        )
        session.execute(stmt, changed)


def _decide(
    session: Session,
    definitions: Definitions,
    ids: Sequence[str],
    stored: dict[str, dict[str, Any]],
    now: datetime,
) -> None:
    """Each person's segments and stage from their values; the memberships that changed
    deleted and inserted in bulk."""
    postgres = is_postgres(session)
    existing: dict[str, dict[str, bool]] = {profile_id: {} for profile_id in ids}
    rows = session.execute(
        select(Membership.profile_id, Membership.segment_id, Membership.stage).where(
            among(postgres, Membership.profile_id, ids)
        )
    )
    for profile_id, segment_id, stage in rows:
        existing[profile_id][segment_id] = stage
    decided = _inside_all(session, definitions, ids, stored, existing)
    gone, entered = [], []
    for profile_id in ids:
        now_in = decided[profile_id]
        was_in = existing[profile_id]
        gone += [(profile_id, s) for s in was_in if s not in now_in]
        entered += [
            {"profile_id": profile_id, "segment_id": s, "stage": stage, "entered_at": now}
            for s, stage in now_in.items()
            if s not in was_in
        ]
    if gone:
        pair = tuple_(Membership.profile_id, Membership.segment_id)
        session.execute(delete(Membership).where(pair.in_(gone)))
    write(session, Membership, entered)


def _inside_all(
    session: Session,
    definitions: Definitions,
    ids: Sequence[str],
    stored: dict[str, dict[str, Any]],
    existing: dict[str, dict[str, bool]],
) -> dict[str, dict[str, bool]]:
    """`inside` for each person. When the rules read computed traits only, people with the
    same values share one answer (most share a handful), so a person costs one key."""
    if any(s.when is not None and s.reads is None for s in definitions.every_segment):
        before = {
            profile_id: cdp_of(definitions, stored[profile_id], list(existing[profile_id].items()))
            for profile_id in ids
        }
        found = session.scalars(select(Profile).where(among(is_postgres(session), Profile.id, ids)))
        people = views(session, list(found), before)
        return {profile_id: inside(definitions, people[profile_id]) for profile_id in ids}
    answers: dict[str, dict[str, bool]] = {}
    decided = {}
    for profile_id in ids:
        computed = computed_of(definitions, stored[profile_id])
        key = json.dumps(computed, sort_keys=True)
        if key not in answers:
            answers[key] = inside(definitions, {"computed": computed})
        decided[profile_id] = answers[key]
    return decided
