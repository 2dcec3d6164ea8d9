"""A journey as the runtime sees it: plain, frozen, already validated.

`app.journeys.language` builds these from YAML; nothing here knows about YAML, so the runtime
(and tests) can build journeys by hand. Frozen dataclasses rather than pydantic models: the
objects are produced once per file version and shared between threads, and they carry
compiled CEL and Jinja2 objects that need no (de)serialisation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta
from functools import cached_property
from types import MappingProxyType
from typing import Any, Literal

from app.durations import Cap, parse_cap, parse_duration
from app.journeys.conditions import Condition
from app.journeys.templates import Template, Variant, Versions
from app.settings import Budget


@dataclass(frozen=True)
class Trigger:
    """Who enters: people who send `event`, if `when` (CEL) holds for that event; or, with
    `segment`, people who enter (`on: enter`) or leave (`on: exit`) that segment or lifecycle
    stage (`event` is then empty)."""

    event: str
    when: Condition | None
    segment: str | None = None
    on: Literal["enter", "exit"] = "enter"


@dataclass(frozen=True)
class ExitWhen:
    """Who leaves early: people on the journey who send `event`, if `when` holds."""

    event: str
    when: Condition | None


@dataclass(frozen=True)
class ReEntry:
    """Whether someone who already went through the journey may enter it again."""

    mode: Literal["never", "always", "cooldown"]
    cooldown: timedelta | None


@dataclass(frozen=True)
class Goal:
    """What counts as a conversion: `event` (if `when` holds) within `within` of entry.

    Without `within`, only while the trip is still running. `value` (CEL, a number) is the
    conversion's revenue in `currency` (ISO 4217), credited to the trip's last message."""

    event: str
    when: Condition | None
    within: timedelta | None
    value: Condition | None = None
    currency: str | None = None


@dataclass(frozen=True)
class BudgetPolicy:
    """The journey's `budget:`. `limit`: at most so much spent on its messages per period,
    every channel together. `on_budget`: what a message of the journey does when a budget
    (this one or its channel's) holds it; None: CARILLON_ON_BUDGET. `fallback` (with
    `on_budget` "fallback"): the channel it goes out on instead."""

    limit: Budget | None = None
    on_budget: Literal["skip", "wait", "fallback"] | None = None
    fallback: str | None = None


@dataclass(frozen=True)
class WaitStep:
    """Pause the trip for `duration`."""

    path: str
    duration: timedelta


@dataclass(frozen=True)
class WaitUntilStep:
    """Pause until the next `at` (wall-clock time) in the person's timezone."""

    path: str
    at: time


@dataclass(frozen=True)
class WaitForStep:
    """Pause until the person sends `event` (if `when` holds), at most `timeout`; on timeout
    the `on_timeout` steps run first. Either way the trip then goes on after this step."""

    path: str
    event: str
    when: Condition | None
    timeout: timedelta
    on_timeout: tuple[Step, ...]


@dataclass(frozen=True)
class BranchArm:
    """`when` is None for the `else` arm."""

    when: Condition | None
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class BranchStep:
    """The first arm whose condition holds runs; with none, the trip goes on after the branch."""

    path: str
    arms: tuple[BranchArm, ...]


@dataclass(frozen=True)
class SplitArm:
    """One arm of an A/B/n test. A holdout arm has no steps and receives no message at all
    for the rest of the trip: it is the control group conversions are compared with."""

    name: str
    weight: int
    holdout: bool
    steps: tuple[Step, ...]


WINNER_METRICS = ("conversion", "revenue")


@dataclass(frozen=True)
class WinnerRule:
    """When an arm is declared the winner: every arm holds `min_per_arm` people and the best
    one beats the others on `metric` with a p-value below `threshold`. From then on new
    entrants all take that arm."""

    metric: str  # one of WINNER_METRICS
    threshold: float  # the p-value under which a difference counts
    min_per_arm: int


@dataclass(frozen=True)
class SplitStep:
    """Weighted random arms; a person's arm depends only on the profile and journey version."""

    path: str
    arms: tuple[SplitArm, ...]
    winner: WinnerRule | None = None


@dataclass(frozen=True)
class UpdateProfileStep:
    """Set traits; string values are templates rendered with the trip's variables."""

    path: str
    set: Mapping[str, Template | str | int | float | bool | None]


# `send: {channel: preferred, message: …}`: the channel is chosen per person when the step
# runs, from their segment's `channels` (app/journeys/steps/channel_choice.py).
PREFERRED = "preferred"


@dataclass(frozen=True)
class SendStep:
    """Send one message on `channel`; every content value is a template rendered at send time.

    With `channel` PREFERRED, `message` names the `messages:` entry and the channel is chosen
    when the step runs; `content` is then empty and `versions` None.

    `remove_on_exit` (meta_audience only): when the trip exits or reaches its goal, the person
    is taken out of the audience again."""

    path: str
    channel: str
    content: Mapping[str, Template]  # the default locale's
    remove_on_exit: bool = False
    message: str | None = None  # the `messages:` entry sent, if any
    versions: Versions | None = None  # that entry's content for `channel`, per locale

    @property
    def preferred(self) -> bool:
        return self.channel == PREFERRED

    def localized(self) -> Versions:
        """The content per locale; an inline send has the default only."""
        return self.versions or Versions(Variant(self.content))


@dataclass(frozen=True)
class ExitStep:
    """End the trip here."""

    path: str


Step = (
    WaitStep
    | WaitUntilStep
    | WaitForStep
    | BranchStep
    | SplitStep
    | UpdateProfileStep
    | SendStep
    | ExitStep
)


def child_lists(step: Step) -> tuple[tuple[Step, ...], ...]:
    """The nested step lists of a step, in arm order (empty for a plain step).

    Nested paths are `<step path>.<arm index>.<index in arm>`: `2.1.0` is the first step of
    the second arm of top-level step 2; the `on_timeout` steps of a `wait_for` are arm 0."""
    if isinstance(step, WaitForStep):
        return (step.on_timeout,)
    if isinstance(step, BranchStep | SplitStep):
        return tuple(arm.steps for arm in step.arms)
    return ()


@dataclass(frozen=True)
class Scenario:
    """A journey's own test case (`tests:` in the file): a profile, events at times relative to
    the first one, and the messages expected (an empty `expect` means: nothing is sent)."""

    name: str
    profile: Mapping[str, Any]
    events: tuple[ScenarioEvent, ...]
    expect: tuple[ExpectedSend, ...]


@dataclass(frozen=True)
class ScenarioEvent:
    at: timedelta
    event: Mapping[str, Any]


@dataclass(frozen=True)
class ExpectedSend:
    """A message expected `at` (relative to the first event) on `channel`, whose rendered
    content contains each `contains` value in the named field."""

    at: timedelta | None
    channel: str
    contains: Mapping[str, str]


@dataclass(frozen=True)
class Journey:
    """One journey file. `source` and `checksum` let the runtime pin and compare versions."""

    id: str
    name: str
    enabled: bool
    trigger: Trigger
    exit_when: ExitWhen | None
    re_entry: ReEntry
    steps: tuple[Step, ...]
    source: str
    checksum: str
    file: str
    goal: Goal | None = None
    tests: tuple[Scenario, ...] = ()  # the `tests:` of the file
    # The `messages:` of the file: name → channel → content per locale.
    messages: Mapping[str, Mapping[str, Versions]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    # Send-time policy. Transactional journeys (receipts, password resets) skip quiet hours and
    # frequency caps; `priority` decides who gets a person's last capped slot; `caps` replaces
    # the CARILLON_FREQUENCY_CAPS of a channel for this journey's messages (() = uncapped).
    kind: Literal["marketing", "transactional"] = "marketing"
    priority: int = 0
    on_cap: Literal["defer", "drop"] = "defer"
    caps: Mapping[str, tuple[Cap, ...]] = field(default_factory=lambda: MappingProxyType({}))
    budget: BudgetPolicy | None = None

    @cached_property
    def _index(self) -> tuple[dict[str, Step], dict[str, str | None]]:
        by_path: dict[str, Step] = {}
        following: dict[str, str | None] = {}

        def walk(steps: tuple[Step, ...], after: str | None) -> None:
            for index, step in enumerate(steps):
                by_path[step.path] = step
                following[step.path] = steps[index + 1].path if index + 1 < len(steps) else after
                for arm in child_lists(step):
                    walk(arm, following[step.path])

        walk(self.steps, None)
        return by_path, following

    def step(self, path: str) -> Step:
        return self._index[0][path]

    def all_steps(self) -> list[Step]:
        """Every step, nested ones included, in the order they are written."""
        return list(self._index[0].values())

    def after(self, path: str) -> str | None:
        """The step that runs once the step at `path` (and any arm it entered) is done."""
        return self._index[1][path]


# The language's durations and caps live below the settings, which parse them too.
__all__ = ["Cap", "parse_cap", "parse_duration"]
