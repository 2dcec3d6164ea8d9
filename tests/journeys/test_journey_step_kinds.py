"""The step kinds beyond wait/send/exit: wait until, wait_for + on_timeout, branch, split,
update_profile; their nested paths, and every mistake in them at `file:line:column`."""

from __future__ import annotations

import textwrap
from datetime import time, timedelta
from pathlib import Path

import pytest

from app.journeys.definition import (
    BranchStep,
    ExitStep,
    Journey,
    SendStep,
    SplitArm,
    SplitStep,
    Step,
    UpdateProfileStep,
    WaitForStep,
    WaitStep,
    WaitUntilStep,
    child_lists,
)
from app.journeys.language.files import Issue, JourneyInvalid, load_path, parse_journey
from app.journeys.templates import Template

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "cart_winback.yaml"
HEAD = "id: demo\nname: Demo\ntrigger:\n  event: Signed Up\n"  # lines 1-4
SMS = "{channel: sms, text: Hi}"


def parse(text: str) -> Journey:
    return parse_journey(HEAD + textwrap.dedent(text), "j.yaml")


def issues_of(text: str) -> list[Issue]:
    with pytest.raises(JourneyInvalid) as info:
        parse(text)
    return info.value.issues


def found(text: str) -> list[tuple[tuple[int, int], str]]:
    return [((i.line, i.column), i.message) for i in issues_of(text)]


def only(text: str) -> Issue:
    issues = issues_of(text)
    assert len(issues) == 1, [str(i) for i in issues]
    return issues[0]


def paths(journey: Journey) -> list[str]:
    """Every step path, depth first, in the order the file lists them."""
    out: list[str] = []

    def walk(steps: tuple[Step, ...]) -> None:
        for step in steps:
            out.append(step.path)
            for arm in child_lists(step):
                walk(arm)

    walk(journey.steps)
    return out


# --- the issue's example, end to end --------------------------------------------------------


def test_the_winback_example_parses_into_the_runtime_dataclasses() -> None:
    [journey], issues = load_path(EXAMPLE)
    assert issues == []
    assert journey.id == "cart-winback"
    assert journey.goal is not None
    assert (journey.goal.event, journey.goal.when, journey.goal.within) == (
        "Order Completed",
        None,
        timedelta(days=7),
    )
    assert journey.re_entry.cooldown == timedelta(days=14)
    wait, split, wait_for, end = journey.steps
    assert wait == WaitUntilStep("0", time(10, 0))
    assert isinstance(split, SplitStep)
    assert [(a.name, a.weight, a.holdout, len(a.steps)) for a in split.arms] == [
        ("A", 45, False, 1),
        ("B", 45, False, 1),
        ("holdout", 10, True, 0),
    ]
    assert [a.steps[0].path for a in split.arms[:2]] == ["1.0.0", "1.1.0"]
    assert isinstance(wait_for, WaitForStep)
    assert (wait_for.event, wait_for.when, wait_for.timeout) == (
        "Order Completed",
        None,
        timedelta(days=2),
    )
    [branch] = wait_for.on_timeout
    assert isinstance(branch, BranchStep) and branch.path == "2.0.0"
    prospect, other = branch.arms
    assert prospect.when is not None
    assert prospect.when.source == 'profile.traits.lifecycle_stage == "prospect"'
    assert prospect.when.evaluate(
        {"event": {}, "profile": {"traits": {"lifecycle_stage": "prospect"}}}
    )
    [sms] = prospect.steps
    assert isinstance(sms, SendStep) and (sms.path, sms.channel) == ("2.0.0.0.0", "sms")
    assert other.when is None
    assert other.steps == (UpdateProfileStep("2.0.0.1.0", {"cart_nudged": True}),)
    assert end == ExitStep("3")
    # The runtime walks the journey by path: each nested list goes on after its holder.
    assert journey.after("1.0.0") == journey.after("1.1.0") == "2"
    assert journey.after("2.0.0.0.0") == journey.after("2.0.0.1.0") == "3"
    assert journey.step("2.0.0.1.0") == other.steps[0]


# --- wait: {until} --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ('"09:00"', time(9, 0)),
        ('"00:00"', time(0, 0)),
        ('"23:59"', time(23, 59)),
        ("10:30", time(10, 30)),
    ],
)
def test_wait_until(written: str, expected: time) -> None:
    journey = parse(f"steps:\n  - wait: {{until: {written}}}\n")
    assert journey.steps == (WaitUntilStep("0", expected),)


def test_bad_times_of_day() -> None:
    issues = issues_of(
        "steps:\n"
        '  - wait: {until: "24:00"}\n'
        '  - wait: {until: "9:00"}\n'
        '  - wait: {until: "12:60"}\n'
        "  - wait: {until: 900}\n"
        "  - wait:\n      until: noon\n"
        '  - wait: {at: "09:00"}\n'
    )
    assert [((i.line, i.column), i.message, i.hint) for i in issues] == [
        ((6, 19), "wait.until: '24:00' is not a time of day", HOUR_HINT),
        (
            (7, 19),
            "wait.until: '9:00' is not a time of day",
            'write the hour with two digits: "09:00"',
        ),
        ((8, 19), "wait.until: '12:60' is not a time of day", HOUR_HINT),
        ((9, 19), 'wait.until must be a time like "09:00", not the number 900', HOUR_HINT),
        ((11, 14), "wait.until: 'noon' is not a time of day", HOUR_HINT),
        ((12, 5), "wait is missing required key 'until'", None),
        ((12, 12), "unknown key 'at' in wait", "allowed: until"),
    ]


HOUR_HINT = 'write a 24-hour time as HH:MM in quotes, e.g. "09:00" or "18:30"'


def test_wait_with_a_duration_still_works_and_for_gets_a_hint() -> None:
    assert parse("steps:\n  - wait: 90m\n").steps == (WaitStep("0", timedelta(minutes=90)),)
    issue = issues_of("steps:\n  - wait: {for: 1h}\n")[1]
    assert issue.message == "unknown key 'for' in wait"
    assert issue.hint == "for a duration write wait: 1h"


# --- wait_for and on_timeout ----------------------------------------------------------------


def test_wait_for_without_on_timeout() -> None:
    journey = parse(
        "steps:\n  - wait_for:\n      event: Order Completed\n"
        "      when: event.properties.total > 10\n      timeout: 3h\n  - exit\n"
    )
    step = journey.steps[0]
    assert isinstance(step, WaitForStep)
    assert (step.path, step.event, step.timeout, step.on_timeout) == (
        "0",
        "Order Completed",
        timedelta(hours=3),
        (),
    )
    assert step.when is not None
    assert step.when.evaluate({"event": {"properties": {"total": 11}}, "profile": {}})
    assert not step.when.evaluate({"event": {"properties": {"total": 9}}, "profile": {}})


def test_on_timeout_steps_are_arm_zero() -> None:
    journey = parse(
        "steps:\n"
        "  - wait: 1h\n"
        "  - wait_for: {event: Clicked, timeout: 1d}\n"
        "    on_timeout:\n"
        f"      - send: {SMS}\n"
        "      - wait: 2h\n"
        "  - exit\n"
    )
    step = journey.steps[1]
    assert isinstance(step, WaitForStep)
    assert [s.path for s in step.on_timeout] == ["1.0.0", "1.0.1"]
    assert journey.after("1.0.1") == "2"


def test_wait_for_mistakes() -> None:
    assert found(
        "steps:\n"
        "  - wait_for: {event: Clicked}\n"  # 6
        "  - wait_for: {event: Clicked, timeout: 2 days, when: evnt.x}\n"  # 7
        "  - wait_for: Clicked\n"  # 8
        "  - wait_for: {event: Clicked, timeout: 1h, on_timeout: [exit]}\n"  # 9
    ) == [
        ((6, 5), "wait_for is missing required key 'timeout'"),
        (
            (7, 41),
            "wait_for.timeout: '2 days' is not a duration like 30s, 15m, 1h or 7d; "
            "did you mean '2d'?",
        ),
        ((7, 55), "wait_for.when: unknown variable 'evnt' in condition"),
        ((8, 15), "wait_for must be a mapping of keys, not 'Clicked'"),
        ((9, 45), "unknown key 'on_timeout' in wait_for"),
    ]


def test_on_timeout_anywhere_else_is_an_error_with_a_hint() -> None:
    issues = issues_of(
        "steps:\n"
        "  - wait_for: {event: Clicked, timeout: 1h}\n"
        "  - on_timeout: [exit]\n"  # 7: its own list item
        "  - wait: 1h\n"
        "    on_timeout: [exit]\n"  # 9: beside another kind
        "on_timeout: [exit]\n"  # 10: at the top level
    )
    assert [((i.line, i.column), i.message) for i in issues] == [
        ((7, 5), "on_timeout is not a step: it belongs beside a wait_for, in the same list item"),
        ((9, 5), "on_timeout goes with wait_for, not with wait"),
        ((10, 1), "unknown key 'on_timeout' in the journey"),
    ]
    assert issues[0].hint == "write on_timeout lined up under its wait_for, with no '- ' before it"
    assert issues[1].hint == issues[0].hint


def test_inside_wait_for_the_hint_says_to_move_it_out() -> None:
    issue = only(
        "steps:\n  - wait_for:\n      event: X\n      timeout: 1h\n      on_timeout: [exit]\n"
    )
    assert (issue.line, issue.column) == (9, 7)
    assert issue.hint == "move on_timeout out of wait_for: line it up under wait_for"


def test_bad_on_timeout_steps_are_reported_with_the_rest() -> None:
    assert found(
        "steps:\n"
        "  - wait_for: {event: X, timeout: 1h}\n"
        "    on_timeout: []\n"
        "  - wait_for: {event: X, timeout: 1h}\n"
        "    on_timeout:\n      - wiat: 1h\n"
    ) == [
        ((7, 17), "on_timeout must be a non-empty list of steps, not an empty list"),
        ((10, 9), "unknown step kind 'wiat'"),
    ]


# --- branch ---------------------------------------------------------------------------------


def test_branch_arms_and_paths() -> None:
    journey = parse(
        "steps:\n"
        "  - branch:\n"
        "      - when: event.properties.total >= 100\n"
        f"        steps:\n          - send: {SMS}\n          - exit\n"
        "      - when: has(profile.traits.vip)\n"
        "        steps:\n          - wait: 1h\n"
        "      - else:\n          - wait: 2h\n"
        f"  - send: {SMS}\n"
    )
    branch = journey.steps[0]
    assert isinstance(branch, BranchStep)
    assert [arm.when.source if arm.when else None for arm in branch.arms] == [
        "event.properties.total >= 100",
        "has(profile.traits.vip)",
        None,
    ]
    assert paths(journey) == ["0", "0.0.0", "0.0.1", "0.1.0", "0.2.0", "1"]
    assert journey.after("0.1.0") == journey.after("0.2.0") == "1"


def test_branch_without_else() -> None:
    branch = parse(
        "steps:\n  - branch:\n      - when: 'true'\n        steps: [exit]\n  - wait: 1h\n"
    ).steps[0]
    assert isinstance(branch, BranchStep) and len(branch.arms) == 1


def test_else_twice_and_not_last() -> None:
    issues = issues_of(
        "steps:\n"
        "  - branch:\n"
        "      - else: [exit]\n"  # 7: not last
        "      - when: 'true'\n        steps: [exit]\n"
        "      - else: [exit]\n"  # 10: a second else
    )
    assert [((i.line, i.column), i.message, i.hint) for i in issues] == [
        (
            (7, 9),
            "else must be the last arm of a branch",
            "move it to the end: the arms after else could never run",
        ),
    ]
    issues = issues_of(  # the branch's next mistake, once that one is fixed
        "steps:\n"
        "  - branch:\n"
        "      - when: 'true'\n        steps: [exit]\n"
        "      - else: [exit]\n"
        "      - else: [exit]\n"  # 10: a second else
    )
    assert [((i.line, i.column), i.message, i.hint) for i in issues] == [
        (
            (10, 9),
            "a branch has at most one else (arm 1 is one already)",
            "merge the else arms into one",
        ),
    ]


def test_branch_arm_mistakes() -> None:
    issues = issues_of(
        "steps:\n"
        "  - branch: []\n"  # 6
        "  - branch:\n      - else: [exit]\n"  # 7-8: nothing but else
        "  - branch:\n"  # 9
        "      - when: profile.traits.vip == true\n"  # 10: no steps
        "      - steps: [exit]\n"  # 11: no when
        "      - when: 'true'\n        step: [exit]\n"  # 12-13: typo
        "      - else: [exit]\n        when: 'true'\n"  # 14-15
        "  - branch:\n      - when: event.properties.total = 1\n        steps: [exit]\n"  # 16-18
        "  - branch: {when: 'true'}\n"  # 19
    )
    assert [((i.line, i.column), i.message) for i in issues] == [
        ((6, 13), "branch must be a non-empty list of arms, not an empty list"),
        ((7, 5), "a branch needs at least one arm with when"),
        ((10, 9), "a branch arm is missing required key 'steps'"),
        ((11, 9), "a branch arm is missing required key 'when'"),
        ((12, 9), "a branch arm is missing required key 'steps'"),
        ((13, 9), "unknown key 'step' in a branch arm"),
        ((15, 9), "unknown key 'when' in an else arm"),
        ((17, 38), "branch.when: unexpected character '=' in condition"),
        ((19, 13), "branch must be a non-empty list of arms, not a mapping"),
    ]
    assert issues[5].hint == "did you mean 'steps'? allowed: when, steps"
    assert issues[6].hint == "an else arm has no condition: it runs when no other arm's holds"


# --- unreachable steps ----------------------------------------------------------------------


def test_step_after_a_branch_whose_every_arm_exits() -> None:
    issue = only(
        "steps:\n"
        "  - branch:\n"
        "      - when: 'true'\n        steps: [exit]\n"
        "      - else:\n          - wait: 1h\n          - exit\n"
        "  - wait: 1h\n"  # 12
    )
    assert (issue.line, issue.column) == (12, 5)
    assert issue.message == "step 1 can never run: every arm of the branch at step 0 ends in exit"
    assert issue.hint == "remove it, or let one of the arms go on without exit"


@pytest.mark.parametrize(
    "arms",
    [
        # without else, people no arm matches go on after the branch
        "      - when: 'true'\n        steps: [exit]\n",
        # one arm goes on
        "      - when: 'true'\n        steps: [exit]\n      - else:\n          - wait: 1h\n",
    ],
)
def test_a_branch_that_may_go_on_does_not_make_the_next_step_unreachable(arms: str) -> None:
    journey = parse("steps:\n  - branch:\n" + arms + "  - wait: 1h\n")
    assert isinstance(journey.steps[1], WaitStep)


def test_nested_branches_that_all_exit_count_too() -> None:
    issue = only(
        "steps:\n"
        "  - branch:\n"
        "      - when: 'true'\n"
        "        steps:\n"
        "          - branch:\n"
        "              - when: 'false'\n                steps: [exit]\n"
        "              - else: [exit]\n"
        "      - else: [exit]\n"
        "  - exit\n"  # 14
    )
    assert (issue.line, issue.message) == (
        14,
        "step 1 can never run: every arm of the branch at step 0 ends in exit",
    )


def test_unreachable_inside_an_arm_uses_the_nested_path() -> None:
    issue = only(
        "steps:\n  - branch:\n      - when: 'true'\n        steps:\n          - exit\n"
        "          - wait: 1h\n"
    )
    assert (issue.line, issue.column) == (10, 13)
    assert issue.message == "step 0.0.1 can never run: it comes after exit (step 0.0.0)"


def test_split_arms_that_all_exit_but_a_holdout_goes_on() -> None:
    all_exit = (
        "steps:\n  - split:\n"
        "      - weight: 50\n        steps: [exit]\n"
        "      - weight: 50\n        steps: [exit]\n"
        "  - wait: 1h\n"
    )
    assert only(all_exit).message == (
        "step 1 can never run: every arm of the split at step 0 ends in exit"
    )
    with_holdout = all_exit.replace(
        "      - weight: 50\n        steps: [exit]\n  - wait",
        "      - holdout: true\n        weight: 50\n  - wait",
    )
    assert isinstance(parse(with_holdout).steps[1], WaitStep)


# --- split ----------------------------------------------------------------------------------


def test_split_default_and_given_names() -> None:
    split = parse(
        "steps:\n  - split:\n"
        f"      - weight: 20\n        steps: [send: {SMS}]\n"
        "      - holdout: true\n        weight: 10\n"
        f"      - weight: 30\n        name: discount_10\n        steps: [send: {SMS}]\n"
        f"      - weight: 40\n        steps: [send: {SMS}]\n"
    ).steps[0]
    assert isinstance(split, SplitStep)
    assert [(a.name, a.weight, a.holdout) for a in split.arms] == [
        ("A", 20, False),
        ("holdout", 10, True),
        ("discount_10", 30, False),
        ("C", 40, False),  # the third arm that is not the holdout
    ]
    assert split.arms[1] == SplitArm("holdout", 10, True, ())
    assert [a.steps[0].path for a in split.arms if a.steps] == ["0.0.0", "0.2.0", "0.3.0"]


def test_split_weights_must_add_up_to_100() -> None:
    issue = only(
        "steps:\n  - split:\n"
        "      - weight: 45\n        steps: [exit]\n"
        "      - weight: 45\n        steps: [exit]\n"
        "      - holdout: true\n        weight: 5\n"
    )
    assert (issue.line, issue.column) == (6, 5)
    assert issue.message == "the split's weights add up to 95, not 100"
    assert issue.hint == "change the weights so that they total 100, the holdout's included"


@pytest.mark.parametrize(
    ("weight", "message"),
    [
        ("0", "weight must be a whole number from 1 to 100, not the number 0"),
        ("101", "weight must be a whole number from 1 to 100, not the number 101"),
        ("50.5", "weight must be a whole number from 1 to 100, not the number 50.5"),
        ('"50"', "weight must be a whole number from 1 to 100, not '50'"),
        ("true", "weight must be a whole number from 1 to 100, not true (a yes/no value)"),
    ],
)
def test_bad_weights(weight: str, message: str) -> None:
    issue = only(
        "steps:\n  - split:\n"
        f"      - weight: {weight}\n        steps: [exit]\n"
        "      - weight: 50\n        steps: [wait: 1h]\n"
    )
    assert ((issue.line, issue.column), issue.message) == ((7, 17), message)


def test_holdout_mistakes() -> None:
    issues = issues_of(
        "steps:\n  - split:\n"
        "      - weight: 80\n        steps: [exit]\n"
        "      - holdout: true\n        weight: 10\n        steps: [exit]\n"  # 9-11
        "      - holdout: true\n        weight: 5\n"  # 12: a second holdout
        "      - holdout: false\n        weight: 5\n        name: hold\n"  # 14
    )
    # The arms' own mistakes first; the split's (a second holdout) once they are fixed.
    assert [((i.line, i.column), i.message) for i in issues] == [
        ((11, 9), "unknown key 'steps' in a holdout arm"),
        ((14, 18), "holdout must be true, not false (a yes/no value)"),
        ((16, 9), "unknown key 'name' in a holdout arm"),
    ]
    assert issues[0].hint == (
        "a holdout arm has no steps: the people in it receive no message from this journey; "
        "remove the steps, or remove holdout: true to make it an ordinary arm"
    )
    assert issues[2].hint == "the holdout arm is always named holdout"
    issue = only(
        "steps:\n  - split:\n"
        "      - weight: 80\n        steps: [exit]\n"
        "      - holdout: true\n        weight: 10\n"
        "      - holdout: true\n        weight: 10\n"  # 11: a second holdout
    )
    assert ((issue.line, issue.column), issue.message) == (
        (11, 9),
        "a split has at most one holdout (arm 1 is one already)",
    )


def test_arm_names_must_be_unique_short_and_not_holdout() -> None:
    long = "x" * 51
    assert found(
        "steps:\n  - split:\n"
        "      - weight: 25\n        steps: [exit]\n"  # default A
        "      - weight: 25\n        name: A\n        steps: [exit]\n"  # 10
        f"      - weight: 25\n        name: {long}\n        steps: [exit]\n"  # 13
        "      - weight: 25\n        name: holdout\n        steps: [exit]\n"  # 16
    ) == [  # each arm's own name first; names used twice once those are fixed
        ((13, 15), "arm name is 51 characters long; the most is 50"),
        ((16, 15), "the name 'holdout' is kept for the holdout arm, whose people receive nothing"),
    ]
    assert found(
        "steps:\n  - split:\n"
        "      - weight: 50\n        steps: [exit]\n"  # default A
        "      - weight: 50\n        name: A\n        steps: [exit]\n"  # 10
    ) == [((10, 15), "arm name 'A' is used twice in this split (arm 0 has it too)")]


def test_split_shape_mistakes() -> None:
    assert found(
        "steps:\n"
        "  - split:\n      - weight: 100\n        steps: [exit]\n"  # 6: one arm
        "  - split: {weight: 50}\n"  # 9
        "  - split:\n      - 50\n      - weight: 50\n        steps: [exit]\n        stesp: []\n"
    ) == [  # one split per journey is checked across the steps, once each step is valid
        ((7, 7), "split needs at least 2 arms"),
        ((9, 12), "split must be a non-empty list of arms, not a mapping"),
        ((11, 9), "a split arm must be a mapping of keys, not the number 50"),
        ((14, 9), "unknown key 'stesp' in a split arm"),
    ]


def test_one_split_per_journey_even_nested() -> None:
    issue = only(
        "steps:\n"
        "  - branch:\n"
        "      - when: 'true'\n"
        "        steps:\n"
        "          - split:\n"
        "              - weight: 50\n                steps: [wait: 1h]\n"
        "              - weight: 50\n                steps: [wait: 2h]\n"
        "  - split:\n"  # 14
        "      - weight: 50\n        steps: [wait: 1h]\n"
        "      - weight: 50\n        steps: [wait: 2h]\n"
    )
    assert (issue.line, issue.column) == (14, 5)
    assert issue.message == "a journey has at most one split (step 0.0.0 is one)"
    assert issue.hint == "test one thing per journey: put every variant in the arms of one split"


# --- update_profile -------------------------------------------------------------------------


def test_update_profile_values() -> None:
    step = parse(
        "steps:\n  - update_profile:\n      set:\n"
        "        cart_nudged: true\n"
        "        points: 10\n"
        "        ratio: 0.5\n"
        "        coupon: null\n"
        "        note: ''\n"
        "        city: \"{{ event.properties.city | default('Paris') }}\"\n"
    ).steps[0]
    assert isinstance(step, UpdateProfileStep)
    values = dict(step.set)
    city, note = values.pop("city"), values.pop("note")
    assert values == {"cart_nudged": True, "points": 10, "ratio": 0.5, "coupon": None}
    assert [type(v) for v in values.values()] == [bool, int, float, type(None)]
    assert isinstance(city, Template) and isinstance(note, Template)
    assert city.render({"event": {"properties": {"city": "Lyon"}}, "profile": {}}) == "Lyon"
    assert note.render({"event": {}, "profile": {}}) == ""


def test_update_profile_mistakes() -> None:
    issues = issues_of(
        "steps:\n"
        "  - update_profile:\n"
        "      set:\n"
        "        address: {city: Paris}\n"  # 8
        "        tags: [a, b]\n"  # 9
        "        1: one\n"  # 10
        "        first: '{{ profil.traits.x }}'\n"  # 11
        "        signed: 2026-01-31\n"  # 12
        "  - update_profile: {unset: [a]}\n"  # 13
        "  - update_profile: {set: {}}\n"  # 14
        "  - update_profile: cart_nudged\n"  # 15
    )
    assert [((i.line, i.column), i.message) for i in issues] == [
        ((8, 18), "trait 'address' must be a single value, not a mapping"),
        ((9, 15), "trait 'tags' must be a single value, not a list"),
        ((10, 9), "a key must be text, not the number 1"),
        ((11, 20), "trait 'first': unknown variable 'profil' in template"),
        (
            (12, 17),
            "trait 'signed' must be text, a number, true/false, null, a list or a mapping, "
            "not the date 2026-01-31",
        ),
        ((13, 5), "update_profile is missing required key 'set'"),
        ((13, 22), "unknown key 'unset' in update_profile"),
        ((14, 27), "update_profile.set must not be empty"),
        ((15, 21), "update_profile must be a mapping of keys, not 'cart_nudged'"),
    ]
    assert issues[0].hint == (
        "set text, a number, true/false or null; give each trait its own key, "
        "e.g. address_city: Paris"
    )
    assert issues[4].hint == 'write it in quotes to make it text, e.g. "2026-01-31"'


# --- the step list as a whole ---------------------------------------------------------------


def test_unknown_step_kind_suggests_the_new_kinds() -> None:
    issues = issues_of("steps:\n  - waitfor: {event: X}\n  - brnch: []\n  - else: [exit]\n")
    assert [(i.message, (i.hint or "").split("?")[0]) for i in issues] == [
        ("unknown step kind 'waitfor'", "did you mean 'wait_for'"),
        ("unknown step kind 'brnch'", "did you mean 'branch'"),
        (
            "unknown step kind 'else'",
            "allowed: wait, wait_for, branch, split, update_profile, send, exit",
        ),
    ]


def test_errors_deep_inside_arms_come_out_together_in_file_order() -> None:
    issues = issues_of(
        "steps:\n"
        "  - wait: {until: '7am'}\n"  # 6
        "  - split:\n"
        "      - weight: 60\n"
        "        steps:\n"
        "          - branch:\n"
        "              - when: profile.traits.x >\n"  # 11
        "                steps:\n"
        "                  - send: {channel: fax, text: Hi}\n"  # 13
        "      - weight: 30\n"
        "        steps:\n"
        "          - wait_for: {event: X, timeout: 0s}\n"  # 16
        "            on_timeout: [update_profile: {set: {a: [1]}}]\n"  # 17
    )
    # The split's weights are checked across its arms, once the file is otherwise valid.
    assert [i.line for i in issues] == [6, 11, 13, 16, 17]
