"""A split's arms (their names, weights and the holdout) and the one-split-per-journey rule:
a trip records one arm, and conversions are counted per arm.
"""

from __future__ import annotations

from typing import Any

from app.analytics.experiments import MIN_PER_ARM
from app.journeys.definition import WINNER_METRICS, Goal, WinnerRule
from app.journeys.language.checks import second_split, winner_problem
from app.journeys.language.steps import HOLDOUT, MAX_ARM_NAME_LENGTH, threshold
from app.journeys.loader.checker import _Checker, _Field
from app.yamlfiles.positions import Pos
from app.yamlfiles.wording import allowed_hint, describe


def _holdout_arm(c: _Checker, arm: Any, item: _Field, holdout_index: int | None) -> None:
    """A holdout arm is `{holdout: true, weight}`: no steps, no name (it is `holdout`)."""
    if (steps := c.field(arm, "steps")) is not None:
        c.error(
            steps.key,
            "a holdout arm has no steps: the people in it receive no message from this journey",
            "remove the steps, or remove holdout: true to make it an ordinary arm",
        )
    c.keys(
        arm,
        item.at,
        "a holdout arm",
        ("holdout", "weight"),
        ("steps",),  # reported above with its own message
        {"name": f"the holdout arm is always named {HOLDOUT}"},
    )
    flag = c.field(arm, "holdout")
    if flag is not None and flag.value is not True:
        c.error(
            flag.at,
            f"holdout must be true, not {describe(flag.value)}",
            "leave holdout out for an arm that has steps",
        )
    if holdout_index is not None:
        c.error(
            item.at,
            f"a split has at most one holdout (arm {holdout_index} is one already)",
            "merge them into one holdout arm with the sum of their weights",
        )


def _arm_name(c: _Checker, f: _Field) -> str | None:
    if (name := c.text(f, "arm name")) is None:
        return None
    if len(name) > MAX_ARM_NAME_LENGTH:
        c.error(
            f.at,
            f"arm name is {len(name)} characters long; the most is {MAX_ARM_NAME_LENGTH}",
            "use a short label such as A, B or discount_10",
        )
        return None
    if name == HOLDOUT:
        c.error(
            f.at,
            f"the name {HOLDOUT!r} is kept for the holdout arm, whose people receive nothing",
            f"choose another name, or write {HOLDOUT}: true (without steps) for a holdout",
        )
        return None
    return name


def _weight(c: _Checker, f: _Field) -> int | None:
    value = f.value
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 100:
        return int(value)
    hint = "write a whole number without quotes, e.g. weight: 50"
    if isinstance(value, int) and not isinstance(value, bool):
        hint = "an arm's weight is its share of people in percent; the weights total 100"
    c.error(f.at, f"weight must be a whole number from 1 to 100, not {describe(value)}", hint)
    return None


def _one_split(c: _Checker) -> None:
    for _, where in c.splits[1:]:
        c.error(where, *second_split(c.splits[0][0]))


_WINNER_EXAMPLE = 'e.g. winner: {metric: conversion, at: "p<0.05", min_per_arm: 500}'


def _winner(c: _Checker, f: _Field) -> WinnerRule | None:
    """`winner: {metric, at, min_per_arm}` beside a split: when the test is decided."""
    before = len(c.issues)
    if (rule := c.mapping(f, "winner", _WINNER_EXAMPLE)) is None:
        return None
    c.keys(rule, f.key, "winner", ("metric", "at"), ("min_per_arm",))
    metric = None
    if (m := c.field(rule, "metric")) is not None:
        if isinstance(m.value, str) and m.value in WINNER_METRICS:
            metric = str(m.value)
            c.winners.append((metric, m.at))
        else:
            c.error(
                m.at,
                f"unknown experiment metric {describe(m.value)}",
                allowed_hint(str(m.value), list(WINNER_METRICS)),
            )
    limit = _threshold(c, at) if (at := c.field(rule, "at")) is not None else None
    min_per_arm = MIN_PER_ARM
    if (n := c.field(rule, "min_per_arm")) is not None:
        if isinstance(n.value, int) and not isinstance(n.value, bool) and n.value >= 1:
            min_per_arm = int(n.value)
        else:
            c.error(
                n.at,
                f"min_per_arm must be a whole number of at least 1, not {describe(n.value)}",
                f"the default is {MIN_PER_ARM}: smaller samples call noise a winner",
            )
    if len(c.issues) > before or metric is None or limit is None:
        return None
    return WinnerRule(metric, limit, min_per_arm)


def _threshold(c: _Checker, f: _Field) -> float | None:
    """`at: "p<0.05"` or `at: 0.05`: the p-value under which the best arm wins."""
    if (value := threshold(f.value)) is not None:
        return value
    c.error(
        f.at,
        f'winner.at must be a p-value threshold such as "p<0.05", not {describe(f.value)}',
        'write "p<" and a number between 0 and 1, in quotes: at: "p<0.05" (or 0.01 to be stricter)',
    )
    return None


def _winner_needs_goal(c: _Checker, goal_written: Pos | None, goal: Goal | None) -> None:
    """A goal written with mistakes was reported already."""
    if goal_written is not None and goal is None:
        return
    for metric, where in c.winners:
        if (problem := winner_problem(metric, goal)) is not None:
            c.error(where, *problem)
