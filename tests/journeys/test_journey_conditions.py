"""CEL conditions: compile-time checks with positions, evaluation on JSON-like data."""

from __future__ import annotations

from typing import Any

import pytest

from app.journeys.conditions import (
    ConditionEvalError,
    ConditionSyntaxError,
    compile_condition,
)


def data(**properties: Any) -> dict[str, Any]:
    return {
        "event": {"event": "Cart Abandoned", "properties": properties, "userId": "u1"},
        "profile": {"id": "p1", "traits": {"plan": "pro"}, "email": "a@example.com"},
    }


def test_source_is_kept() -> None:
    source = "event.properties.total >= 20"
    assert compile_condition(source).source == source


@pytest.mark.parametrize(
    ("source", "total", "expected"),
    [
        ("event.properties.total >= 20", 25, True),
        ("event.properties.total >= 20", 25.5, True),
        ("event.properties.total >= 20", 10, False),
        ("event.properties.total >= 19.99", 25, True),  # int data, double literal
        ("event.properties.total >= 19.99", 19, False),
        ("event.properties.total == 25.0", 25, True),
        ("event.properties.total != 25", 25.0, False),
        ("event.properties.total < 20", 19.5, True),
    ],
)
def test_ints_and_doubles_compare(source: str, total: float, expected: bool) -> None:
    assert compile_condition(source).evaluate(data(total=total)) is expected


def test_the_usual_cel() -> None:
    cases = {
        "has(event.properties.total) && event.properties.total > 1": False,
        "event.event == 'Cart Abandoned' && profile.traits.plan in ['pro', 'team']": True,
        "event.properties.tags.exists(t, t == 'vip')": True,
        "event.properties.tags.all(t, size(t) > 2)": True,
        "profile.email.endsWith('@example.com')": True,
        "timestamp('2026-01-01T00:00:00Z') > timestamp('2025-01-01T00:00:00Z')": True,
    }
    for source, expected in cases.items():
        assert compile_condition(source).evaluate(data(tags=["vip", "new"])) is expected, source


def test_missing_field_is_an_eval_error() -> None:
    with pytest.raises(ConditionEvalError, match=r"no such member in mapping: 'total'"):
        compile_condition("event.properties.total >= 20").evaluate(data())


def test_wrong_type_is_a_readable_eval_error() -> None:
    with pytest.raises(ConditionEvalError) as info:
        compile_condition("event.properties.total >= 20").evaluate(data(total="25"))
    assert str(info.value) == "cannot apply '>=' to string and int"


def test_non_bool_result_is_an_eval_error() -> None:
    with pytest.raises(ConditionEvalError, match="must be true or false"):
        compile_condition("event.properties.total + 1").evaluate(data(total=1))


def test_missing_variable_and_unusable_data() -> None:
    condition = compile_condition("event.properties.total > 1")
    with pytest.raises(ConditionEvalError, match="no value given for event"):
        condition.evaluate({"profile": {}})
    with pytest.raises(ConditionEvalError, match="cannot use this data"):
        condition.evaluate({"event": {"properties": {"total": object()}}, "profile": {}})


@pytest.mark.parametrize(
    ("source", "line", "column", "message"),
    [
        ("event.properties.total = 20", 1, 24, "unexpected character '=' in condition"),
        ("event.properties.total >= ", 1, 24, "condition ends too early"),
        ("", 1, 1, "condition is empty"),
        ("(event.x", 1, 8, "condition ends too early"),
        ("event.x\n  && (event.y ]", 2, 15, "unexpected ']' in condition"),
    ],
)
def test_syntax_errors(source: str, line: int, column: int, message: str) -> None:
    with pytest.raises(ConditionSyntaxError) as info:
        compile_condition(source)
    assert (info.value.line, info.value.column, info.value.message) == (line, column, message)


@pytest.mark.parametrize(
    ("source", "column", "message", "hint"),
    [
        ("evnt.properties.total > 1", 1, "unknown variable 'evnt'", "did you mean 'event'?"),
        ("event.x > 1 && user.id == 'a'", 16, "unknown variable 'user'", None),
        ("event.x.exists(e, e > 1) && e > 2", 29, "unknown variable 'e'", None),
        ("sizee(event.x) > 1", 1, "unknown function 'sizee'", "did you mean 'size'?"),
        ("event.x.startswith('a')", 9, "unknown method 'startswith'", "did you mean 'startsWith'?"),
    ],
)
def test_unknown_names_fail_at_compile_time(
    source: str, column: int, message: str, hint: str | None
) -> None:
    with pytest.raises(ConditionSyntaxError) as info:
        compile_condition(source)
    assert (info.value.column, info.value.message) == (column, f"{message} in condition")
    if hint:
        assert info.value.hint == hint


def test_macro_variables_and_type_names_are_known() -> None:
    compile_condition("event.properties.items.map(i, i.price).exists(p, p > 10)")
    compile_condition("type(event.properties.total) == int || .event.x == 1")


def test_absurd_nesting_is_a_syntax_error_not_a_crash() -> None:
    with pytest.raises(ConditionSyntaxError):
        compile_condition("(" * 3000 + "1" + ")" * 3000)
