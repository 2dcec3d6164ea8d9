"""The checks across a journey's parts, which no model of one part can make: steps that can
never run, a split's weights, one split per journey, what a winner rule and the goal need of
each other, the messages send steps name, the names and event order of `tests:`, and (given
the segments' channels) whether a `channel: preferred` send can reach anybody; and what
needs the settings: the goal's revenue and the budget in the currency costs are counted in.

They run once over a journey the models validated and compiled (a send step naming a message
the file lacks is compiled with no versions, for this pass to report), each issue placed on
the node it is about through `app.yamlfiles`: so they are told once the file's other
mistakes are fixed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from difflib import get_close_matches
from itertools import pairwise
from typing import Any

from app.journeys.definition import (
    PREFERRED,
    BranchStep,
    ExitStep,
    Goal,
    Journey,
    SendStep,
    SplitStep,
    Step,
    WaitForStep,
)
from app.settings import get_settings
from app.yamlfiles.issues import Issue
from app.yamlfiles.positions import node_position

Loc = tuple[str | int, ...]  # a path of keys and indexes in the document, as pydantic's `loc`
Problem = tuple[str, str]  # (message, hint)


def ends_trip(step: Step) -> Problem | None:
    """Why no step can follow `step` in its list, or None if one can."""
    if isinstance(step, ExitStep):
        return f"it comes after exit (step {step.path})", "remove it, or move exit to the end"
    if isinstance(step, BranchStep | SplitStep) and _always_exits(step):
        kind = "branch" if isinstance(step, BranchStep) else "split"
        return (
            f"every arm of the {kind} at step {step.path} ends in exit",
            "remove it, or let one of the arms go on without exit",
        )
    return None


def _always_exits(step: Step) -> bool:
    """A trip never goes on after an exit, a branch with an `else` whose every arm always
    exits, or a split (without holdout: holdout people go on) whose every arm always exits."""
    if isinstance(step, ExitStep):
        return True
    if isinstance(step, BranchStep) and step.arms[-1].when is not None:
        return False  # no else: when no condition holds, the trip goes on after the branch
    if isinstance(step, BranchStep | SplitStep):
        return all(arm.steps and _always_exits(arm.steps[-1]) for arm in step.arms)
    return False


def never_runs(path: str, why: Problem) -> Problem:
    return f"step {path} can never run: {why[0]}", why[1]


def weights_problem(total: int) -> Problem | None:
    if total == 100:
        return None
    return (
        f"the split's weights add up to {total}, not 100",
        "change the weights so that they total 100, the holdout's included",
    )


def second_split(first: str) -> Problem:
    """A trip records one arm (on the trip and its deliveries) and conversions are counted per
    arm: a second split would overwrite the first one's arm, and a holdout person could be
    drawn into an arm that sends."""
    return (
        f"a journey has at most one split (step {first} is one)",
        "test one thing per journey: put every variant in the arms of one split",
    )


def winner_problem(metric: str, goal: Goal | None) -> Problem | None:
    """A winner is judged on the goal: conversions need one, revenue needs its value."""
    if goal is None:
        return (
            f"winner by {metric} needs a goal: without one nobody converts",
            "add goal: {event: Order Completed} to the journey",
        )
    if metric == "revenue" and goal.value is None:
        return (
            "winner by revenue needs the goal to have a value",
            "add value: and currency: to the goal, e.g. value: event.properties.total, "
            "currency: EUR; or use metric: conversion",
        )
    return None


def unreachable_goal(event: str) -> Problem:
    """The goal's event is also the exit_when event (with no condition)."""
    return (
        f"the goal cannot be reached during a trip: {event!r} is also the exit_when "
        "event, and exit_when is checked first",
        "remove exit_when: reaching the goal already ends the trip (as converted)",
    )


MESSAGE_EXAMPLE = "e.g. messages: {welcome: {sms: {text: Bienvenue !}}}"


def unknown_message(name: str, known: Iterable[str]) -> Problem:
    close = get_close_matches(name, list(known), n=1)
    hint = (
        f"did you mean {close[0]!r}?"
        if close
        else f"define it under messages: at the top level, {MESSAGE_EXAMPLE}"
    )
    return f"unknown message {name!r}", hint


def missing_variant(name: str, channel: str, has: Iterable[str]) -> Problem:
    return (
        f"message {name!r} has no {channel} variant",
        f"it has {', '.join(has)}; add {channel}: under messages.{name}",
    )


def fallback_problem(channel: str, sent: Iterable[Collection[str]]) -> Problem | None:
    """A budget's fallback needs a message to send: one a send step names (`sent`: the
    channels of each) with a variant for it."""
    if any(channel in channels for channels in sent):
        return None
    return (
        f"on_budget falls back to {channel}, but no message a send step sends "
        f"has a variant for {channel}",
        f"send a message by name (send: {{channel: sms, message: welcome}}) and give it "
        f"a variant for {channel} under messages",
    )


# Each segment's and lifecycle stage's `channels`, by id: what `channel: preferred` sends
# choose from (app.segments.loader.channel_lists).
SegmentChannels = Mapping[str, tuple[str, ...]]


def preferred_problem(
    name: str, has: Collection[str], segments: SegmentChannels, trigger_segment: str | None
) -> Problem | None:
    """A `channel: preferred` send's message (`has`: its channels) needs a variant for a
    channel the segments list (the trigger segment's, when it lists any: it decides for every
    trip of the journey), or no person could ever get it."""
    listed = segments.get(trigger_segment or "", ())
    who = f"segment {trigger_segment}" if listed else "any segment"
    if not listed:
        listed = tuple(dict.fromkeys(ch for channels in segments.values() for ch in channels))
    if any(channel in has for channel in listed):
        return None
    hint = (
        f"it has {', '.join(has)}; the channels listed are {', '.join(listed)}: add "
        f"{listed[0]}: under messages.{name}"
        if listed
        else "no segment lists channels yet: give one "
        f"channels: [{', '.join(has)}] in the segments directory"
    )
    return (
        f"channel preferred: message {name!r} has no variant for a channel {who} lists",
        hint,
    )


def name_used(name: str, line: int) -> Problem:
    """Two tests of one name: a failure would not say which one."""
    return (
        f"test name {name!r} is already used on line {line}",
        "give each test its own name, so a failure says which one",
    )


def out_of_order(at: str, previous: str) -> Problem:
    return (
        f"events must be listed in time order: {at} comes before the previous event's {previous}",
        "list the events in the order they happen",
    )


def currency_problem(code: str) -> Problem | None:
    """Why an amount in `code` cannot be counted with the costs, and what to do, or None: the
    one currency costs are counted in, or spend and ROI would add up euros and dollars."""
    currency = get_settings().cost_currency
    if code == currency:
        return None
    return (
        f"in {code} but costs are counted in {currency} (CARILLON_COST_CURRENCY)",
        f"write it in {currency}, or set CARILLON_COST_CURRENCY={code} with prices in {code}",
    )


def revenue_problem(code: str) -> Problem | None:
    if (problem := currency_problem(code)) is None:
        return None
    return f"goal revenue is {problem[0]}: ROI needs one currency", problem[1]


def budget_problem(code: str) -> Problem | None:
    if (problem := currency_problem(code)) is None:
        return None
    return f"budget.amount is {problem[0]}", problem[1]


def journey_issues(
    journey: Journey, document: Any, file: str, segments: SegmentChannels | None = None
) -> list[Issue]:
    """Every problem across the parts of `journey`, compiled from `document` (the file's
    round-trip YAML, which knows where each part is written). With `segments`, each
    `channel: preferred` send is checked against their channels too."""
    issues: list[Issue] = []

    def report(loc: Loc, problem: Problem, key: bool = False) -> None:
        issues.append(Issue(file, *node_position(document, loc, key=key), *problem))

    splits: list[SplitStep] = []
    named: list[str] = []  # the messages send steps name
    for step, loc in _steps(journey.steps, ("steps",), report):
        if isinstance(step, SendStep) and step.message is not None:
            named.append(step.message)
            if (problem := _sent(step, journey, segments)) is not None:
                report((*loc, "send", "message"), problem)
        if not isinstance(step, SplitStep):
            continue
        splits.append(step)
        if (weights := weights_problem(sum(arm.weight for arm in step.arms))) is not None:
            report((*loc, "split"), weights, key=True)
        if len(splits) > 1:
            report((*loc, "split"), second_split(splits[0].path), key=True)
        winner = step.winner
        if winner is not None and (problem := winner_problem(winner.metric, journey.goal)):
            report((*loc, "winner", "metric"), problem)
    fallback = journey.budget.fallback if journey.budget else None
    sent = [journey.messages.get(name, {}) for name in named]
    if fallback is not None and (problem := fallback_problem(fallback, sent)) is not None:
        report(("budget", "on_budget"), problem)
    _scenarios(journey, document, report)
    currency = journey.goal.currency if journey.goal else None
    if currency is not None and (problem := revenue_problem(currency)) is not None:
        report(("goal", "currency"), problem)
    limit = journey.budget.limit if journey.budget else None
    if limit is not None and (problem := budget_problem(limit.currency)) is not None:
        report(("budget", "amount"), problem)
    goal, exit_when = journey.goal, journey.exit_when
    if goal and exit_when and (exit_when.event, exit_when.when) == (goal.event, None):
        report(("goal",), unreachable_goal(goal.event), key=True)
    return sorted(issues, key=lambda issue: (issue.line, issue.column))


def _scenarios(journey: Journey, document: Any, report: Any) -> None:
    """Each test's name is its own, and its events are in time order (as written: the
    message quotes the times the file gives)."""
    lines: dict[str, int] = {}  # test name → its line
    for index, scenario in enumerate(journey.tests):
        loc: Loc = ("tests", index)
        if scenario.name in lines:
            report((*loc, "name"), name_used(scenario.name, lines[scenario.name]))
        else:
            lines[scenario.name] = node_position(document, (*loc, "name"))[0]
        written = document["tests"][index]["events"]
        for at, (before, event) in enumerate(pairwise(scenario.events), start=1):
            if event.at < before.at:
                problem = out_of_order(str(written[at]["at"]), str(written[at - 1]["at"]))
                report((*loc, "events", at, "at"), problem)


def _sent(step: SendStep, journey: Journey, segments: SegmentChannels | None) -> Problem | None:
    """What is wrong with the message a send step names, if anything."""
    name = step.message or ""
    if name not in journey.messages:
        return unknown_message(name, journey.messages)
    versions = journey.messages[name]
    if step.channel != PREFERRED and step.channel not in versions:
        return missing_variant(name, step.channel, versions)
    if step.channel == PREFERRED and segments is not None:
        return preferred_problem(name, versions, segments, journey.trigger.segment)
    return None


def _steps(steps: tuple[Step, ...], loc: Loc, report: Any) -> Iterator[tuple[Step, Loc]]:
    """Each step with where it is written, in the file's order (a step before the steps it
    holds), reporting on the way the first step of each list that can never run."""
    stop: Problem | None = None
    told = False  # the first step that can never run is reported, not each one after it
    for index, step in enumerate(steps):
        if stop is not None and not told:
            report((*loc, index), never_runs(step.path, stop), key=True)
            told = True
        stop = stop or ends_trip(step)
        yield step, (*loc, index)
        for inner, where in _lists(step, (*loc, index)):
            yield from _steps(inner, where, report)


def _lists(step: Step, loc: Loc) -> Iterator[tuple[tuple[Step, ...], Loc]]:
    """The step lists `step` holds, with where each is written."""
    if isinstance(step, WaitForStep):
        yield step.on_timeout, (*loc, "on_timeout")
    if isinstance(step, BranchStep):
        for index, arm in enumerate(step.arms):
            yield arm.steps, (*loc, "branch", index, "steps" if arm.when is not None else "else")
    if isinstance(step, SplitStep):
        for index, split_arm in enumerate(step.arms):
            yield split_arm.steps, (*loc, "split", index, "steps")
