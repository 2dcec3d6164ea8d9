"""Segments as the engine sees them: plain, frozen, already validated and compiled.

Built from the validated file models (`language`) once per file version, and shared between
threads like journeys are. `Definitions` is the whole directory at once, since trait names are
global: an event is matched against every trait of every file in one pass.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from types import MappingProxyType

from app.durations import parse_duration
from app.journeys.conditions import Condition, compile_condition
from app.segments import expressions
from app.segments.language import DERIVED, SegmentFile


@dataclass(frozen=True)
class AggregateTrait:
    """An aggregate of the person's `event` events (those `where` holds for), over the last
    `within` when set. `of` is the path of the event's value it aggregates."""

    name: str
    kind: str  # count | sum | min | max | first | last | distinct
    event: str
    of: tuple[str, ...]
    within: timedelta | None
    where: Condition | None
    file: str

    @property
    def kept_per_event(self) -> bool:
        """Whether each event's value is kept (to age out of the window, or to tell distinct
        values apart) rather than folded into one running value."""
        return self.within is not None or self.kind == "distinct"


@dataclass(frozen=True)
class DerivedTrait:
    """A CEL expression over other computed traits, evaluated after them."""

    name: str
    expression: Condition
    reads: tuple[str, ...]
    file: str


@dataclass(frozen=True)
class Segment:
    """Who is in: `when` holds for them. A lifecycle stage is a segment whose `when` is the
    first of its stages to hold (the last stage's `when` is None: everybody else)."""

    id: str
    name: str
    when: Condition | None
    channels: tuple[str, ...]
    file: str
    stage: bool = False

    @cached_property
    def reads(self) -> tuple[str, ...] | None:
        """The computed traits `when` depends on alone, if it reads nothing else: people
        with the same values of them get the same answer (evaluated once per batch)."""
        return None if self.when is None else expressions.computed_only(self.when)


@dataclass(frozen=True)
class SegmentDefinition:
    """One file: its traits, and its segment or its stages."""

    id: str
    name: str
    file: str
    source: str
    checksum: str
    aggregates: tuple[AggregateTrait, ...]
    derived: tuple[DerivedTrait, ...]
    segments: tuple[Segment, ...]  # the file's segment, or its stages in order
    has_stages: bool


def _path(of: str | None, kind: str) -> tuple[str, ...]:
    if of is None:
        return ("timestamp",) if kind in ("first", "last") else ()
    return tuple(of.split("."))


def build(model: SegmentFile, file: str, source: str) -> SegmentDefinition:
    """The compiled form of a validated file."""
    aggregates, derived = [], []
    for name, spec in model.traits.items():
        kind = spec.kind
        if kind == DERIVED:
            expression = compile_condition(str(spec.compute), ("profile",))
            reads = tuple(dict.fromkeys(r.name for r in expressions.trait_references(expression)))
            derived.append(DerivedTrait(name, expression, reads, file))
            continue
        aggregates.append(
            AggregateTrait(
                name=name,
                kind=kind,
                event=str(getattr(spec, kind)),
                of=_path(spec.of, kind),
                within=parse_duration(spec.within) if spec.within else None,
                where=compile_condition(spec.where, ("event",)) if spec.where else None,
                file=file,
            )
        )
    if model.stages is not None:
        segments = tuple(
            Segment(
                stage.id,
                stage.name or stage.id,
                compile_condition(stage.when, ("profile",)) if stage.when else None,
                tuple(stage.channels),
                file,
                stage=True,
            )
            for stage in model.stages
        )
    elif model.when is not None:
        when = compile_condition(model.when, ("profile",))
        segments = (Segment(model.id, model.name, when, tuple(model.channels), file),)
    else:
        segments = ()
    return SegmentDefinition(
        id=model.id,
        name=model.name,
        file=file,
        source=source,
        checksum=hashlib.sha256(source.encode("utf-8")).hexdigest(),
        aggregates=tuple(aggregates),
        derived=tuple(derived),
        segments=segments,
        has_stages=model.stages is not None,
    )


def evaluation_order(derived: list[DerivedTrait]) -> list[DerivedTrait]:
    """Derived traits, each after the derived traits it reads (the loader refuses cycles;
    one left here, from files loaded apart, is broken by file order)."""
    by_name = {trait.name: trait for trait in derived}
    ordered: list[DerivedTrait] = []
    state: dict[str, str] = {}

    def visit(trait: DerivedTrait) -> None:
        if state.get(trait.name):
            return
        state[trait.name] = "visiting"
        for read in trait.reads:
            if read in by_name:
                visit(by_name[read])
        state[trait.name] = "done"
        ordered.append(trait)

    for trait in derived:
        visit(trait)
    return ordered


@dataclass(frozen=True)
class Definitions:
    """Every current segment file together: what the engine evaluates for each person."""

    files: tuple[SegmentDefinition, ...]
    aggregates: Mapping[str, AggregateTrait] = field(default_factory=lambda: MappingProxyType({}))
    derived: tuple[DerivedTrait, ...] = ()
    segments: tuple[Segment, ...] = ()  # plain segments
    stages: tuple[Segment, ...] = ()  # the lifecycle stages, in order

    @classmethod
    def of(cls, files: list[SegmentDefinition]) -> Definitions:
        """The files together; on a clash (two files loaded apart) the first file wins."""
        files = sorted(files, key=lambda f: f.file)
        aggregates: dict[str, AggregateTrait] = {}
        derived: dict[str, DerivedTrait] = {}
        segments: dict[str, Segment] = {}
        stages: list[Segment] = []
        for definition in files:
            for trait in definition.aggregates:
                if trait.name not in aggregates and trait.name not in derived:
                    aggregates[trait.name] = trait
            for rule in definition.derived:
                if rule.name not in aggregates and rule.name not in derived:
                    derived[rule.name] = rule
            if definition.has_stages:
                if not stages:
                    stages = list(definition.segments)
            else:
                for segment in definition.segments:
                    segments.setdefault(segment.id, segment)
        return cls(
            files=tuple(files),
            aggregates=MappingProxyType(aggregates),
            derived=tuple(evaluation_order(list(derived.values()))),
            segments=tuple(segments.values()),
            stages=tuple(stages),
        )

    @cached_property
    def by_event(self) -> Mapping[str, tuple[AggregateTrait, ...]]:
        """The aggregates each event name feeds."""
        found: dict[str, list[AggregateTrait]] = {}
        for trait in self.aggregates.values():
            found.setdefault(trait.event, []).append(trait)
        return MappingProxyType({name: tuple(traits) for name, traits in found.items()})

    @cached_property
    def every_segment(self) -> tuple[Segment, ...]:
        return (*self.segments, *self.stages)

    def segment(self, segment_id: str) -> Segment | None:
        return next((s for s in self.every_segment if s.id == segment_id), None)

    def first_listing_channels(self, segment_ids: Collection[str]) -> Segment | None:
        """The first of these segments that lists channels, in the directory's order: the
        segment files by name, then the lifecycle stage."""
        return next((s for s in self.every_segment if s.id in segment_ids and s.channels), None)
