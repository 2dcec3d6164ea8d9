"""Step lists, and the step kinds that hold step lists (wait_for, branch, split): one module,
since a list is parsed kind by kind and these kinds hold lists again. `STEP_PARSERS` is the
table of every kind; a new kind is one function (here or in `leaf_steps.py`) and one entry.
"""

from __future__ import annotations

from collections.abc import Callable

from app.journeys.conditions import compile_condition
from app.journeys.definition import (
    BranchArm,
    BranchStep,
    ExitStep,
    SplitArm,
    SplitStep,
    Step,
    WaitForStep,
)
from app.journeys.language.checks import ends_trip, never_runs, weights_problem
from app.journeys.language.steps import HOLDOUT, arm_names
from app.journeys.loader.checker import _Checker, _event_rule, _Field
from app.journeys.loader.leaf_steps import _update_profile_step, _wait_step
from app.journeys.loader.messages import _send_step
from app.journeys.loader.splits import (
    _arm_name,
    _holdout_arm,
    _weight,
    _winner,
)
from app.yamlfiles.wording import allowed_hint, describe

_STEPS_HINT = "start each step on its own line with '- ', e.g. - wait: 1h"

StepParser = Callable[[_Checker, _Field, str], Step | None]  # (checker, step's value, path)


def _step_list(c: _Checker, f: _Field, what: str, prefix: str) -> tuple[Step, ...] | None:
    """A list of steps; `prefix` is the path of the step list ("" at the top level, else
    `<step path>.<arm index>`), so a step's path is `prefix.index`."""
    if (items := c.sequence(f, what, "steps", _STEPS_HINT)) is None:
        return None
    steps: list[Step] = []
    stop: tuple[str, str] | None = None  # why the steps after the current one cannot run
    unreachable = False
    for index, item in c.items(items):
        path = f"{prefix}.{index}" if prefix else str(index)
        if stop is not None and not unreachable:  # report the first one only
            c.error(item.at, *never_runs(path, stop))
            unreachable = True
        step = _step(c, item, path)
        if step is not None:
            steps.append(step)
            stop = stop or ends_trip(step)
    return tuple(steps) if len(steps) == len(items) and not unreachable else None


def _step(c: _Checker, f: _Field, path: str) -> Step | None:
    """One list item: a bare word (`exit`) or a mapping with exactly one step kind, plus the
    keys that may sit beside it (`on_timeout` beside `wait_for`, `winner` beside `split`)."""
    kinds = [*STEP_PARSERS, *BARE_STEPS]
    if isinstance(f.value, str) and f.value in BARE_STEPS:
        return BARE_STEPS[f.value](path)
    if isinstance(f.value, str):
        c.error(f.at, f"unknown step {f.value!r}", allowed_hint(f.value, kinds))
        return None
    if not isinstance(f.value, dict) or not f.value:
        c.error(
            f.at,
            f"a step must be one of {', '.join(kinds)}, not {describe(f.value)}",
            "e.g. - wait: 1h",
        )
        return None
    main = [key for key in f.value if key not in BESIDE]
    if len(main) > 1:
        keys = list(f.value)
        hint = "put each step in its own list item starting with '- '"
        if any(key in STEP_PARSERS and f.value[key] is None for key in keys):
            hint = "indent the options under the step kind, two spaces further than it"
        c.error(f.at, f"a step has exactly one kind, found {', '.join(map(str, keys))}", hint)
        return None
    beside = {str(key): c.entry(f.value, key) for key in f.value if key in BESIDE}
    misplaced = [key for key in beside if main != [BESIDE[key]]]
    for key in misplaced:
        owner = BESIDE[key]
        message = (
            f"{key} goes with {owner}, not with {main[0]}"
            if main
            else f"{key} is not a step: it belongs beside a {owner}, in the same list item"
        )
        hint = f"write {key} lined up under its {owner}, with no '- ' before it"
        c.error(beside[key].key, message, hint)
    if not main:
        return None
    (kind,) = main
    value = c.entry(f.value, kind)
    if (parser := STEP_PARSERS.get(kind)) is None:
        hint = (
            f"write '- {kind}' alone, without ':'"
            if kind in BARE_STEPS
            else allowed_hint(str(kind), kinds)
        )
        c.error(value.key, f"unknown step kind {str(kind)!r}", hint)
        return None
    extra = {key: bf for key, bf in beside.items() if key not in misplaced}
    step = parser(c, _Field(value.value, value.key, value.at, extra), path)
    return None if misplaced else step


def _wait_for_step(c: _Checker, f: _Field, path: str) -> Step | None:
    """`wait_for: {event, when, timeout}`, with `on_timeout: [steps]` beside it (arm 0)."""
    rule = _event_rule(
        c,
        f,
        "wait_for",
        ("timeout",),
        "e.g. wait_for: {event: Order Completed, timeout: 2d}",
        {"on_timeout": "move on_timeout out of wait_for: line it up under wait_for"},
    )
    timeout = None
    if isinstance(f.value, dict):
        if (timeout_field := c.field(f.value, "timeout")) is None:
            c.error(
                f.key,
                "wait_for is missing required key 'timeout'",
                "say how long to wait at most, e.g. timeout: 2d",
            )
        else:
            timeout = c.duration(timeout_field, "wait_for.timeout")
    on_timeout: tuple[Step, ...] | None = ()
    if (steps := f.beside.get("on_timeout")) is not None:
        on_timeout = _step_list(c, steps, "on_timeout", f"{path}.0")
    if rule is None or timeout is None or on_timeout is None:
        return None
    return WaitForStep(path, rule[0], rule[1], timeout, on_timeout)


def _branch_step(c: _Checker, f: _Field, path: str) -> Step | None:
    """`branch: [{when, steps}…, {else: steps}]`; arm `i`'s steps are at `path.i.<index>`."""
    before = len(c.issues)
    hint = "write each arm as - when: <condition> with its steps:, and last - else: [steps]"
    if (items := c.sequence(f, "branch", "arms", hint)) is None:
        return None
    arms: list[BranchArm] = []
    else_index: int | None = None
    for index, item in c.items(items):
        prefix = f"{path}.{index}"
        if isinstance(item.value, dict) and "else" in item.value:
            c.keys(
                item.value,
                item.at,
                "an else arm",
                ("else",),
                hints={
                    "when": "an else arm has no condition: it runs when no other arm's holds",
                    "steps": "write the else arm's steps under else itself: - else: [steps]",
                },
            )
            if else_index is not None:
                c.error(
                    item.at,
                    f"a branch has at most one else (arm {else_index} is one already)",
                    "merge the else arms into one",
                )
            elif index < len(items) - 1:
                c.error(
                    item.at,
                    "else must be the last arm of a branch",
                    "move it to the end: the arms after else could never run",
                )
            else_index = index if else_index is None else else_index
            steps = _step_list(c, c.entry(item.value, "else"), "else", prefix)
            if steps is not None:
                arms.append(BranchArm(None, steps))
            continue
        if (arm := c.mapping(item, "a branch arm", hint)) is None:
            continue
        c.keys(arm, item.at, "a branch arm", ("when", "steps"))
        when_field = c.field(arm, "when")
        when = c.compiled(when_field, "branch.when", compile_condition) if when_field else None
        steps_field = c.field(arm, "steps")
        steps = _step_list(c, steps_field, "steps", prefix) if steps_field else None
        if when is not None and steps is not None:
            arms.append(BranchArm(when, steps))
    if len(items) == 1 and else_index == 0:
        c.error(
            f.key,
            "a branch needs at least one arm with when",
            "steps that always run need no branch: write them in the list directly",
        )
    return BranchStep(path, tuple(arms)) if len(c.issues) == before else None


def _split_step(c: _Checker, f: _Field, path: str) -> Step | None:
    """`split: [{weight, steps, name?}…, {holdout: true, weight}]`: weighted arms, whose
    weights (the holdout's included) add up to 100."""
    before = len(c.issues)
    c.splits.append((path, f.key))
    hint = "write each arm as - weight: 50 with its steps:, or - holdout: true with a weight"
    if (items := c.sequence(f, "split", "arms", hint)) is None:
        return None
    if len(items) < 2:
        c.error(
            f.key,
            "a split needs at least two arms",
            "e.g. two arms of weight 50, or an arm of weight 90 and a holdout of weight 10",
        )
    letters = arm_names()
    arms: list[SplitArm] = []
    named: dict[str, int] = {}  # arm name → index of the arm
    weights: list[int] = []
    holdout_index: int | None = None
    for index, item in c.items(items):
        if (arm := c.mapping(item, "a split arm", hint)) is None:
            continue
        name_field = c.field(arm, "name")
        if "holdout" in arm:
            _holdout_arm(c, arm, item, holdout_index)
            holdout_index = index if holdout_index is None else holdout_index
            name: str | None = HOLDOUT
            steps: tuple[Step, ...] | None = ()
        else:
            c.keys(arm, item.at, "a split arm", ("weight", "steps"), ("name",))
            default = next(letters)
            name = _arm_name(c, name_field) if name_field else default
            steps_field = c.field(arm, "steps")
            steps = _step_list(c, steps_field, "steps", f"{path}.{index}") if steps_field else None
        weight_field = c.field(arm, "weight")
        weight = _weight(c, weight_field) if weight_field else None
        if weight is not None:
            weights.append(weight)
        if name is not None and name != HOLDOUT and name in named:
            c.error(
                name_field.at if name_field else item.at,
                f"arm name {name!r} is used twice in this split (arm {named[name]} has it too)",
                "give each arm its own name, or no name to get A, B, C… in order",
            )
        elif name is not None:
            named[name] = index
        if name is not None and weight is not None and steps is not None:
            arms.append(SplitArm(name, weight, name == HOLDOUT, steps))
    if len(weights) == len(items) and (problem := weights_problem(sum(weights))) is not None:
        c.error(f.key, *problem)
    winner = _winner(c, w) if (w := f.beside.get("winner")) is not None else None
    return SplitStep(path, tuple(arms), winner) if len(c.issues) == before else None


STEP_PARSERS: dict[str, StepParser] = {
    "wait": _wait_step,
    "wait_for": _wait_for_step,
    "branch": _branch_step,
    "split": _split_step,
    "update_profile": _update_profile_step,
    "send": _send_step,
}
BARE_STEPS: dict[str, Callable[[str], Step]] = {"exit": ExitStep}
# Keys written beside a step kind in the same list item → the one kind they go with.
BESIDE: dict[str, str] = {"on_timeout": "wait_for", "winner": "split"}
