"""The segment file as the marketer writes it: pydantic models that validate one file (through
`app.yamlfiles`, so every mistake comes back as `file:line:column`) and whose JSON Schema is
what editors complete with.

What one file cannot know (a trait used here but defined in another file, a trait defined
twice, a cycle between computed traits) is checked across the directory by `loader`.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from app.durations import parse_duration
from app.journeys.language.values import compile_expression
from app.segments import expressions
from app.yamlfiles import YamlModel
from app.yamlfiles.wording import allowed_hint
from channels import registry

AGGREGATES = ("count", "sum", "min", "max", "first", "last", "distinct")
# A computed trait may also be a CEL expression over other computed traits.
DERIVED = "compute"
KINDS = (*AGGREGATES, DERIVED)
# Aggregates over a value of the event (`of`); `first` and `last` default to its timestamp.
NEEDS_OF = ("sum", "min", "max", "distinct")
ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,99}")
TRAIT_NAME = re.compile(r"[a-z][a-z0-9_]{0,99}")
# `properties.total`, `timestamp`, `context.page.path`: a path into the event as sent.
PATH = re.compile(r"[A-Za-z_$][\w$-]*(\.[A-Za-z_$][\w$-]*)*")
WITHIN_HINT = "write a whole number and a unit, e.g. 30d, 12h or 15m"


def _identifier(value: str) -> str:
    if not ID_PATTERN.fullmatch(value):
        raise PydanticCustomError(
            "identifier",
            "{name} must be lowercase letters, digits, - and _ (at most 100), not {value}",
            {"hint": "e.g. frequent-abandoners"},
        )
    return value


def _trait_name(value: str) -> str:
    if not TRAIT_NAME.fullmatch(value):
        raise PydanticCustomError(
            "trait_name",
            "trait name {value} must start with a lowercase letter and hold only lowercase "
            "letters, digits and _",
            {"hint": "it is read as profile.computed.<name>, e.g. carts_30d"},
        )
    return value


def _channel(value: str) -> str:
    names = list(registry.names())
    if value not in names:
        raise PydanticCustomError(
            "channel", "{name}: unknown channel {value}", {"hint": allowed_hint(value, names)}
        )
    return value


Identifier = Annotated[str, AfterValidator(_identifier)]
TraitName = Annotated[str, AfterValidator(_trait_name)]
Channel = Annotated[str, AfterValidator(_channel)]


class TraitSpec(YamlModel):
    """One computed trait: an aggregate of the person's events of one name, or (`compute`) a
    CEL expression over other computed traits."""

    count: str | None = Field(None, min_length=1, description="Count the events of this name.")
    sum: str | None = Field(None, min_length=1, description="Add up `of` over these events.")
    min: str | None = Field(None, min_length=1, description="The smallest `of` of these events.")
    max: str | None = Field(None, min_length=1, description="The largest `of` of these events.")
    first: str | None = Field(
        None, min_length=1, description="`of` (default: timestamp) of the earliest such event."
    )
    last: str | None = Field(
        None, min_length=1, description="`of` (default: timestamp) of the latest such event."
    )
    distinct: str | None = Field(
        None, min_length=1, description="How many different values of `of` these events had."
    )
    compute: str | None = Field(
        None,
        min_length=1,
        description="A CEL expression over other computed traits (profile.computed.*).",
    )
    of: str | None = Field(
        None, description="The event's value to aggregate: properties.total, timestamp, ..."
    )
    within: str | None = Field(
        None, description="Only events of the last 30d, 12h, ...: the value changes as they age."
    )
    where: str | None = Field(
        None, description="CEL over `event`: only the events for which it holds count."
    )

    @field_validator("of")
    @classmethod
    def _path(cls, value: str) -> str:
        if not PATH.fullmatch(value):
            raise PydanticCustomError(
                "path",
                "{name} must be a path into the event such as properties.total, not {value}",
                {"hint": "keys joined by dots: properties.total, timestamp, context.page.path"},
            )
        return value

    @field_validator("within")
    @classmethod
    def _window(cls, value: str) -> str:
        try:
            parse_duration(value)
        except ValueError as exc:
            raise PydanticCustomError("duration", str(exc), {"hint": WITHIN_HINT}) from None
        return value

    @field_validator("where")
    @classmethod
    def _where(cls, value: str) -> str:
        compile_expression(value, ("event",))
        return value

    @field_validator("compute")
    @classmethod
    def _compute(cls, value: str) -> str:
        expressions.check_profile_reads(
            compile_expression(value, ("profile",)), expressions.COMPUTE_READS
        )
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> TraitSpec:
        kinds = [kind for kind in KINDS if getattr(self, kind) is not None]
        if not kinds:
            raise PydanticCustomError(
                "aggregate",
                "{name} names no aggregate",
                {"hint": f"give one of {', '.join(KINDS)}, e.g. count: Order Completed"},
            )
        if len(kinds) > 1:
            raise PydanticCustomError(
                "aggregate",
                f"{{name}} names {' and '.join(kinds)}: a trait is one aggregate",
                {"hint": "define one trait per aggregate, each under its own name"},
            )
        kind = kinds[0]
        if kind in NEEDS_OF and self.of is None:
            raise PydanticCustomError(
                "aggregate",
                f"{{name}}: {kind} needs `of`, the event's value to aggregate",
                {"hint": "e.g. of: properties.total"},
            )
        if kind in ("count", DERIVED) and self.of is not None:
            raise PydanticCustomError(
                "aggregate", f"{{name}}: {kind} takes no `of`", {"hint": "remove `of`"}
            )
        if kind == DERIVED and (self.within is not None or self.where is not None):
            raise PydanticCustomError(
                "aggregate",
                "{name}: compute takes no `within` or `where`",
                {"hint": "put the window or the filter on the traits it reads"},
            )
        return self

    @property
    def kind(self) -> str:
        return next(kind for kind in KINDS if getattr(self, kind) is not None)


class StageSpec(YamlModel):
    """A lifecycle stage: the first whose `when` holds is the person's; the last has none."""

    id: Identifier = Field(description="The stage's id, also a segment id (trigger, segments).")
    name: str | None = Field(None, description="How people read it.")
    when: str | None = Field(
        None, description="CEL over `profile`; the last stage has none (everybody else)."
    )
    channels: list[Channel] = Field(
        default_factory=list, description="This stage's preferred channels, in order."
    )

    @field_validator("when")
    @classmethod
    def _when(cls, value: str) -> str:
        return _segment_when(value)


def _segment_when(value: str) -> str:
    condition = compile_expression(value, ("profile",))
    expressions.check_profile_reads(condition, expressions.WHEN_READS)
    expressions.check_boolean(condition)
    return value


class SegmentFile(YamlModel):
    """One file of `segments/`: computed traits (names global to the directory), and a segment
    (`when`) or lifecycle stages (`stages`, one file at most)."""

    id: Identifier = Field(description="The segment's id: trigger: {segment: <id>}.")
    name: str = Field(min_length=1, description="How people read it.")
    description: str | None = None
    traits: dict[TraitName, TraitSpec] = Field(
        default_factory=dict, description="Computed traits, read as profile.computed.<name>."
    )
    when: str | None = Field(
        None,
        description="CEL over `profile`: who is in the segment, e.g. "
        "profile.computed.carts_30d >= 2",
    )
    stages: list[StageSpec] | None = Field(
        None, min_length=1, description="Lifecycle stages instead of `when`: the first that holds."
    )
    channels: list[Channel] = Field(
        default_factory=list, description="This segment's preferred channels, in order."
    )

    @field_validator("when")
    @classmethod
    def _when(cls, value: str) -> str:
        return _segment_when(value)

    @model_validator(mode="after")
    def _stages(self) -> SegmentFile:
        if self.when is not None and self.stages is not None:
            raise PydanticCustomError(
                "segment",
                "{name} has both `when` and `stages`",
                {"hint": "a file is one segment (when) or the lifecycle stages (stages)"},
            )
        if self.stages is not None:
            for stage in self.stages[:-1]:
                if stage.when is None:
                    raise PydanticCustomError(
                        "segment",
                        f"stage {stage.id!r} has no `when` but is not the last stage",
                        {"hint": "only the last stage, where everybody else goes, has no when"},
                    )
            if self.stages[-1].when is not None:
                raise PydanticCustomError(
                    "segment",
                    f"the last stage {self.stages[-1].id!r} must have no `when`",
                    {"hint": "it takes everybody the other stages leave: one stage per person"},
                )
        return self
