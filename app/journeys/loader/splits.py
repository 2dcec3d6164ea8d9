"""A split's arms (their names, weights and the holdout) and the one-split-per-journey rule:
a trip records one arm, and conversions are counted per arm.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count, product
from string import ascii_uppercase
from typing import Any

from app.journeys.loader.checker import _Checker, _Field
from app.yamlfiles.wording import describe

MAX_ARM_NAME_LENGTH = 50  # journey_instances.arm and deliveries.arm are VARCHAR(50)
HOLDOUT = "holdout"  # the holdout arm's name: the runtime sends nothing to trips in that arm


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


def _arm_names() -> Iterator[str]:
    """A, B, … Z, AA, AB, …: the default names of a split's arms, in order."""
    for size in count(1):
        for letters in product(ascii_uppercase, repeat=size):
            yield "".join(letters)


def _one_split(c: _Checker) -> None:
    """A trip records one arm (on the trip and its deliveries) and conversions are counted per
    arm: a second split would overwrite the first one's arm, and a holdout person could be
    drawn into an arm that sends."""
    for _, where in c.splits[1:]:
        c.error(
            where,
            f"a journey has at most one split (step {c.splits[0][0]} is one)",
            "test one thing per journey: put every variant in the arms of one split",
        )
