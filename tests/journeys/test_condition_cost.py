"""What a CEL condition may cost: nesting and written lists checked at load, the rest
stopped at run time with the reason, like any condition that cannot be evaluated."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from app.journeys.conditions import (
    ConditionEvalError,
    ConditionSyntaxError,
    compile_condition,
    holds,
)
from app.journeys.language.files import JourneyInvalid, parse_journey

NESTED = "event.properties.items.all(a, event.properties.items.all(b, a >= 0 && b >= 0))"


def data(**properties: Any) -> dict[str, Any]:
    return {"event": {"properties": properties}, "profile": {"traits": {}}}


@pytest.mark.usefixtures("no_wall_clock_limit")
def test_a_nested_comprehension_over_a_long_list_is_stopped_by_its_step_budget() -> None:
    condition = compile_condition(NESTED)
    with pytest.raises(ConditionEvalError) as info:
        condition.evaluate(data(items=list(range(300))))  # 90,000 passes: half a minute
    assert str(info.value) == (
        "the condition went over its limits: more than 25,000 evaluation steps"
    )


def test_short_lists_and_single_comprehensions_are_fine() -> None:
    assert compile_condition(NESTED).evaluate(data(items=list(range(20))))
    many = [{"price": price} for price in range(500)]
    assert compile_condition("event.properties.items.exists(i, i.price > 490)").evaluate(
        data(items=many)
    )


def test_each_evaluation_has_its_own_budget() -> None:
    condition = compile_condition("event.properties.items.exists(i, i.price > 490)")
    many = [{"price": price} for price in range(500)]
    for _ in range(5):
        assert condition.evaluate(data(items=many))


def test_building_a_long_text_is_stopped_before_it_is_built() -> None:
    ten = " + ".join(["event.properties.s"] * 12)
    condition = compile_condition(f"size({ten}) > 0")
    with pytest.raises(ConditionEvalError) as info:
        condition.evaluate(data(s="x" * 100_000))
    assert str(info.value).startswith("the condition went over its limits: ")
    assert "characters would pass the 1,000,000 allowed" in str(info.value)
    assert condition.evaluate(data(s="abc"))


@pytest.mark.usefixtures("no_wall_clock_limit")
def test_a_stopped_condition_does_not_hold_and_says_why(caplog: pytest.LogCaptureFixture) -> None:
    condition = compile_condition(NESTED)
    with caplog.at_level(logging.INFO, logger="app.journeys.conditions"):
        assert not holds(condition, data(items=list(range(300))), "promo trigger")
    assert "promo trigger: condition" in caplog.text
    assert "went over its limits: more than 25,000 evaluation steps" in caplog.text


def test_a_stopped_condition_inside_or_is_not_swallowed() -> None:
    """`||` and `&&` set errors aside to short-circuit; a stopped evaluation is not one."""
    condition = compile_condition(f"{NESTED} || true")
    with pytest.raises(ConditionEvalError, match="went over its limits"):
        condition.evaluate(data(items=list(range(300))))


# --- at load ---------------------------------------------------------------------------------


def test_three_nested_comprehensions_are_refused_at_load() -> None:
    source = (
        "event.properties.a.exists(x,\n"
        "  event.properties.b.exists(y,\n"
        "    event.properties.c.all(z, x + y + z > 0)))"
    )
    with pytest.raises(ConditionSyntaxError) as info:
        compile_condition(source)
    error = info.value
    assert (error.line, error.column) == (3, 24)  # the innermost: `all`
    assert error.message == (
        "comprehensions nested 3 deep (at most 2): each level runs once per item of the level above"
    )
    assert error.hint and "items.exists(i, i.price > 100)" in error.hint


def test_comprehensions_side_by_side_or_in_the_list_are_not_nested() -> None:
    compile_condition(
        "event.properties.a.exists(x, x > 1) && event.properties.b.all(y, y > 0)"
        " && event.properties.a.map(x, x * 2).filter(y, y > 2).exists(z, z > 3)"
    )


def test_lists_written_in_the_condition_are_counted_at_load() -> None:
    numbers = ", ".join(str(n) for n in range(200))
    with pytest.raises(ConditionSyntaxError) as info:
        compile_condition(f"[{numbers}].all(a, [{numbers}].all(b, a + b >= 0))")
    assert info.value.message.startswith(
        "the lists written in this condition alone make 40,200 comprehension passes; "
        "a condition may take 25,000 evaluation steps"
    )
    assert compile_condition(f"[{numbers}].exists(a, a == 199)").evaluate(data())


def test_validation_reports_a_costly_condition_at_its_place() -> None:
    text = (
        "id: demo\nname: Demo\ntrigger:\n  event: Cart Abandoned\n"
        "  when: event.properties.items.all(a, event.properties.items.all(b,"
        " event.properties.items.all(c, a + b + c > 0)))\n"
        "steps: [exit]\n"
    )
    with pytest.raises(JourneyInvalid) as info:
        parse_journey(text, "j.yaml")
    [issue] = info.value.issues
    assert (issue.line, issue.column) == (5, 92)  # the innermost `all`
    assert issue.message.startswith("trigger.when: comprehensions nested 3 deep")
