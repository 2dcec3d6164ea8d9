"""`winner:` beside a split: read into the split's rule, and every mistake refused at load with
its line, column and a hint (nothing is loaded)."""

from __future__ import annotations

import textwrap

import pytest

from app.journeys.definition import SplitStep, WinnerRule
from app.journeys.language import journey_model
from app.journeys.language.compile import compile_journey
from app.journeys.language.files import Issue, JourneyInvalid, parse_journey
from app.yamlfiles import validate_yaml

HEAD = "id: demo\nname: Demo\ntrigger:\n  event: Signed Up\n"  # lines 1-4
GOAL = "goal: {event: Order Completed, within: 7d, value: event.properties.total, currency: EUR}\n"
SPLIT = (  # lines 6-10 after HEAD and one goal line
    "steps:\n"
    "  - split:\n"
    "      - {weight: 50, steps: [wait: 1h]}\n"
    "      - {weight: 50, steps: [wait: 2h]}\n"
    "    winner: {rule}\n"
)


def text(rule: str, goal: str = GOAL) -> str:
    return HEAD + goal + SPLIT.replace("{rule}", rule)


def split_of(source: str) -> SplitStep:
    journey = parse_journey(source, "j.yaml")
    [split] = [step for step in journey.all_steps() if isinstance(step, SplitStep)]
    return split


def issues_of(source: str) -> list[Issue]:
    with pytest.raises(JourneyInvalid) as info:
        parse_journey(source, "j.yaml")
    return info.value.issues


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            '{metric: conversion, at: "p<0.05", min_per_arm: 500}',
            WinnerRule("conversion", 0.05, 500),
        ),
        ('{metric: revenue, at: "p < 0.01"}', WinnerRule("revenue", 0.01, 500)),
        ("{metric: conversion, at: 0.1, min_per_arm: 1}", WinnerRule("conversion", 0.1, 1)),
    ],
)
def test_the_rule_is_read_and_the_language_models_agree(rule: str, expected: WinnerRule) -> None:
    source = text(rule)
    assert split_of(source).winner == expected
    document = validate_yaml(source, "j.yaml", journey_model(), "the journey")
    assert repr(compile_journey(document, source, "j.yaml")) == repr(
        parse_journey(source, "j.yaml")
    )


def test_without_winner_the_split_has_no_rule() -> None:
    source = (
        HEAD
        + GOAL
        + "steps:\n  - split:\n      - {weight: 50, steps: [exit]}\n"
        + ("      - {weight: 50, steps: [wait: 1h]}\n")
    )
    assert split_of(source).winner is None


@pytest.mark.parametrize(
    ("rule", "goal", "at", "message", "hint"),
    [
        (
            '{metric: clicks, at: "p<0.05"}',
            GOAL,
            (10, 22),
            "unknown experiment metric 'clicks'",
            "allowed: conversion, revenue",
        ),
        (
            '{metric: conversoin, at: "p<0.05"}',
            GOAL,
            (10, 22),
            "unknown experiment metric 'conversoin'",
            "did you mean 'conversion'? allowed: conversion, revenue",
        ),
        (
            '{metric: conversion, at: "p<1.5"}',
            GOAL,
            (10, 38),
            "winner.at must be a p-value threshold such as \"p<0.05\", not 'p<1.5'",
            'write "p<" and a number between 0 and 1, in quotes: at: "p<0.05" (or 0.01 to be '
            "stricter)",
        ),
        (
            "{metric: conversion, at: 5%}",
            GOAL,
            (10, 38),
            "winner.at must be a p-value threshold such as \"p<0.05\", not '5%'",
            None,
        ),
        (
            '{metric: conversion, at: "p<0.05", min_per_arm: 0}',
            GOAL,
            (10, 61),
            "winner.min_per_arm must be a whole number of at least 1, not the number 0",
            "the default is 500: smaller samples call noise a winner",
        ),
        (
            '{metric: conversion, at: "p<0.05", min_per_am: 500}',
            GOAL,
            (10, 48),
            "unknown key 'min_per_am' in winner",
            "did you mean 'min_per_arm'? allowed: metric, at, min_per_arm",
        ),
        (
            "{metric: conversion}",
            GOAL,
            (10, 5),
            "winner is missing required key 'at'",
            None,
        ),
        (
            "conversion",
            GOAL,
            (10, 13),
            "winner must be a mapping of keys, not 'conversion'",
            None,
        ),
        (
            '{metric: revenue, at: "p<0.05"}',
            "goal: {event: Order Completed, within: 7d}\n",
            (10, 22),
            "winner by revenue needs the goal to have a value",
            "add value: and currency: to the goal, e.g. value: event.properties.total, "
            "currency: EUR; or use metric: conversion",
        ),
        (
            '{metric: conversion, at: "p<0.05"}',
            "description: no goal\n",
            (10, 22),
            "winner by conversion needs a goal: without one nobody converts",
            "add goal: {event: Order Completed} to the journey",
        ),
    ],
)
def test_mistakes_are_refused_with_position_and_hint(
    rule: str, goal: str, at: tuple[int, int], message: str, hint: str | None
) -> None:
    [issue] = issues_of(text(rule, goal))
    assert (issue.line, issue.column, issue.message) == (*at, message)
    if hint is not None:
        assert issue.hint == hint


def test_winner_beside_another_step_kind_is_refused() -> None:
    source = (
        HEAD
        + GOAL
        + textwrap.dedent(
            """\
        steps:
          - wait: 1h
            winner: {metric: conversion, at: "p<0.05"}
        """
        )
    )
    [issue] = issues_of(source)
    assert (issue.line, issue.column, issue.message) == (
        8,
        5,
        "winner goes with split, not with wait",
    )
    assert issue.hint == "write winner lined up under its split, with no '- ' before it"


@pytest.mark.parametrize(
    "at",
    ['"p<0.05"', '"p < .01"', '"p<00.05"', '"p<0.0"', '"p<1"', '"0.05"', "0.05", "1", "0", "true"],
)
def test_a_threshold_is_a_p_value_strictly_between_0_and_1(at: str) -> None:
    source = text(f"{{metric: conversion, at: {at}}}")
    try:
        parse_journey(source, "j.yaml")
        loaded = True
    except JourneyInvalid:
        loaded = False
    assert loaded == (at in ('"p<0.05"', '"p < .01"', "0.05"))
