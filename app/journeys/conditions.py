"""CEL conditions (`trigger.when`, `exit_when.when`): compiled once at load, evaluated per event.

Conditions use CEL through cel-python, the pure-Python implementation maintained by Cloud
Custodian. CEL fits conditions written by marketers: it has no side effects, no I/O and always
terminates (how long it may take is bounded in `cel_cost`), so a journey file cannot harm the
engine, and its syntax reads like the `event.properties.total >= 20` people already write.
Being pure Python, cel-python installs with pip on any platform without a compiled extension
or protobuf toolchain, and its parser reports the line and column of a syntax error, which we
map back into the journey file.

cel-python has no type checker, so unknown variables, functions and methods are found here by
walking the parsed expression, at load time rather than on the first event. It also compares
only numbers of the same kind; JSON gives `25` or `25.5` depending on the value, so the
comparison operators are replaced by ones that compare any two numbers (as the CEL spec does).
"""

from __future__ import annotations

import logging
import operator
import re
from collections.abc import Callable, Iterator
from difflib import get_close_matches
from typing import Any

import celpy
import lark
from celpy import celtypes
from celpy.evaluation import CELEvalError, base_functions, boolean

from app.journeys import budget
from app.journeys.cel_cost import (
    BUDGETED_FUNCTIONS,
    CEL_LIMITS,
    MACROS,
    BudgetedRunner,
    CostError,
    check_cost,
)

_log = logging.getLogger(__name__)

VARIABLES: tuple[str, ...] = ("event", "profile")

# Type names (`type(x) == int`) are identifiers too.
_TYPE_NAMES = frozenset(
    {
        "bool",
        "bytes",
        "double",
        "duration",
        "int",
        "list",
        "map",
        "null_type",
        "string",
        "timestamp",
        "type",
        "uint",
        "dyn",
    }
)
_FUNCTIONS = frozenset(name for name in base_functions if "_" not in name or name == "null_type")
_GLOBAL_FUNCTIONS = _FUNCTIONS | {"has", "dyn"}
_METHODS = (_FUNCTIONS - _TYPE_NAMES) | MACROS


class ConditionSyntaxError(ValueError):
    """The condition cannot be compiled; `line`/`column` are 1-based, inside the expression."""

    def __init__(self, message: str, column: int, line: int = 1, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.column = column
        self.line = line
        self.hint = hint


class ConditionEvalError(Exception):
    """The condition could not be evaluated for this data (missing field, wrong type...)."""


class Condition:
    """A compiled CEL expression: a condition (`evaluate`, a bool) or an amount (`number`, a
    goal's value), checked and limited the same way."""

    def __init__(self, source: str, program: celpy.Runner, ast: lark.Tree | None = None) -> None:
        self.source = source
        self._program = program
        self.ast = ast  # the parsed expression, for checks the caller makes (segments' traits)

    def __repr__(self) -> str:
        return f"Condition({self.source!r})"

    def _result(self, activation: dict[str, Any]) -> Any:
        """Evaluate against JSON-like data, e.g. `{"event": {...}, "profile": {...}}`."""
        missing = [name for name in VARIABLES if name not in activation]
        if missing:
            raise ConditionEvalError(f"no value given for {', '.join(missing)}")
        try:
            variables = {name: celpy.json_to_cel(value) for name, value in activation.items()}
        except (TypeError, ValueError) as exc:
            raise ConditionEvalError(f"cannot use this data in a condition: {exc}") from exc
        try:
            with budget.spending(CEL_LIMITS):
                result = self._program.evaluate(variables)
        except budget.OverBudget as exc:
            raise ConditionEvalError(f"the condition went over its limits: {exc}") from exc
        except CELEvalError as exc:
            raise ConditionEvalError(_eval_message(exc)) from exc
        except Exception as exc:  # a bug or unsupported feature inside the CEL library
            raise ConditionEvalError(f"{type(exc).__name__}: {exc}") from exc
        if isinstance(result, CELEvalError):
            raise ConditionEvalError(_eval_message(result))
        return result

    def evaluate(self, activation: dict[str, Any]) -> bool:
        result = self._result(activation)
        if not isinstance(result, celtypes.BoolType | bool):
            raise ConditionEvalError(
                f"a condition must be true or false, but this one gave {_type_name(result)} "
                f"{result!s}"
            )
        return bool(result)

    def value(self, activation: dict[str, Any]) -> Any:
        """Whatever the expression gives (a segment's computed trait), as JSON-like data."""
        return _json_value(self._result(activation))

    def number(self, activation: dict[str, Any]) -> float:
        result = self._result(activation)
        if isinstance(result, celtypes.BoolType | bool) or not isinstance(result, int | float):
            raise ConditionEvalError(
                f"a value must be a number, but this one gave {_type_name(result)} {result!s}"
            )
        return float(result)


def compile_condition(source: str, variables: tuple[str, ...] = VARIABLES) -> Condition:
    """Parse and check `source`; unknown variables and functions fail here, not per event.
    `variables` are the ones this kind of expression may read (a segment trait's `where`
    reads the event only); evaluation still takes every one of `VARIABLES`."""
    try:
        ast = _ENV.compile(source)
        _check_names(ast, variables)
        check_cost(ast)
    except celpy.CELParseError as exc:
        raise _syntax_error(source, exc) from None
    except CostError as exc:
        raise ConditionSyntaxError(
            exc.message,
            column=exc.token.column or 1,
            line=exc.token.line or 1,
            hint="test the list once, e.g. items.exists(i, i.price > 100), or keep lists short",
        ) from None
    except RecursionError:
        raise ConditionSyntaxError("condition is nested too deeply", column=1) from None
    return Condition(source, _ENV.program(ast, functions=_FUNCTIONS_USED), ast)


# --- compile-time checks ------------------------------------------------------------------


def _syntax_error(source: str, exc: celpy.CELParseError) -> ConditionSyntaxError:
    """Turn Lark's parser error into one short sentence."""
    line, column = exc.line or 1, exc.column or 1
    cause = exc.__context__
    if isinstance(cause, lark.UnexpectedCharacters):
        message = f"unexpected character {cause.char!r} in condition"
        hint = _operator_hint(source, line, column)
    elif isinstance(cause, lark.UnexpectedToken) and cause.token.type == "$END":
        message = "condition ends too early" if source.strip() else "condition is empty"
        hint = "complete the expression, e.g. event.properties.total >= 20"
    elif isinstance(cause, lark.UnexpectedToken):
        message = f"unexpected {str(cause.token)!r} in condition"
        hint = None
    else:
        message, hint = "invalid condition", None
    return ConditionSyntaxError(message, column=column, line=line, hint=hint)


def _operator_hint(source: str, line: int, column: int) -> str | None:
    """Marketers coming from SQL or spreadsheets write `=`, `and`, `or`, `&&&`..."""
    text = source.splitlines()[line - 1][column - 1 :] if source else ""
    if text.startswith("=") or text.startswith("&") or text.startswith("|"):
        return "CEL uses == for equality, && for 'and', || for 'or' and ! for 'not'"
    if text.startswith("'") or text.startswith('"'):
        return "a string is not closed: add the missing quote"
    return None


def _check_names(ast: lark.Tree, variables: tuple[str, ...]) -> None:
    """cel-python has no type checker: find unknown names ourselves, before any event comes."""
    known = {
        "variable": frozenset(variables) | _TYPE_NAMES,
        "function": _GLOBAL_FUNCTIONS,
        "method": _METHODS,
    }
    for token, kind in _names(ast, frozenset()):
        name = str(token)
        if name in known[kind]:
            continue
        choices = list(variables) if kind == "variable" else sorted(known[kind])
        close = get_close_matches(name, choices, n=1, cutoff=0.7)
        if close:
            hint = f"did you mean {close[0]!r}?"
        elif kind == "variable" and variables == VARIABLES:
            hint = "conditions read event and profile, e.g. event.properties.total"
        elif kind == "variable":
            hint = f"this expression reads {' and '.join(variables)} only"
        else:
            hint = f"available: {', '.join(choices)}"
        raise ConditionSyntaxError(
            f"unknown {kind} {name!r} in condition", token.column or 1, token.line or 1, hint
        )


def _names(tree: lark.Tree, bound: frozenset[str]) -> Iterator[tuple[lark.Token, str]]:
    """Yield (token, kind) for free variables, global functions and methods in the AST."""
    kind = tree.data
    children = tree.children
    if kind in ("ident", "dot_ident"):
        token = children[0]
        if isinstance(token, lark.Token) and str(token) not in bound:
            yield token, "variable"
        return
    if kind in ("ident_arg", "dot_ident_arg"):
        token = children[0]
        if isinstance(token, lark.Token):
            yield token, "function"
        children = children[1:]
    elif kind == "member_dot_arg":
        target, method = children[0], children[1]
        if isinstance(target, lark.Tree):
            yield from _names(target, bound)
        if isinstance(method, lark.Token):
            yield method, "method"
        args = [c for c in children[2:] if isinstance(c, lark.Tree)]
        exprs = args[0].children if args else []
        variable = _bare_identifier(exprs[0]) if exprs and str(method) in MACROS else None
        if variable is not None:
            for expr in exprs[1:]:
                if isinstance(expr, lark.Tree):
                    yield from _names(expr, bound | {variable})
            return
        children = args
    for child in children:
        if isinstance(child, lark.Tree):
            yield from _names(child, bound)


def _bare_identifier(tree: Any) -> str | None:
    """`x` when the expression is just an identifier (a macro's loop variable)."""
    while isinstance(tree, lark.Tree) and len(tree.children) == 1:
        if tree.data == "ident":
            return str(tree.children[0])
        tree = tree.children[0]
    return None


# --- evaluation ---------------------------------------------------------------------------

_NUMBERS = (celtypes.IntType, celtypes.UintType, celtypes.DoubleType)


def _numeric(op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """CEL compares int, uint and double with each other; cel-python only compares alike
    types. JSON gives ints or floats depending on the value (`25` vs `25.5`), so a condition
    must not fail just because a literal is written `20` or `19.99`."""
    fallback = boolean(op)

    def compare(a: Any, b: Any) -> Any:
        if isinstance(a, _NUMBERS) and isinstance(b, _NUMBERS):
            return celtypes.BoolType(op(_plain(a), _plain(b)))
        return fallback(a, b)

    return compare


def _plain(value: Any) -> int | float:
    return float(value) if isinstance(value, float) else int(value)


_NUMERIC_COMPARISONS: dict[str, Any] = {
    "_==_": _numeric(operator.eq),
    "_!=_": _numeric(operator.ne),
    "_<_": _numeric(operator.lt),
    "_<=_": _numeric(operator.le),
    "_>_": _numeric(operator.gt),
    "_>=_": _numeric(operator.ge),
}

_OPERATORS = {
    "relation_lt": "<",
    "relation_le": "<=",
    "relation_gt": ">",
    "relation_ge": ">=",
    "relation_eq": "==",
    "relation_ne": "!=",
    "relation_in": "in",
    "addition_add": "+",
    "addition_sub": "-",
    "multiplication_mul": "*",
    "multiplication_div": "/",
    "multiplication_mod": "%",
}


def _eval_message(exc: CELEvalError) -> str:
    """cel-python's messages quote Lark rule names and Python classes; say it in CEL terms."""
    message = str(exc.args[0]) if exc.args else "evaluation failed"
    message = message.split(" (in activation", 1)[0]
    overload = re.match(r"found no matching overload for Token\('RULE', '(\w+)'\)", message)
    if overload:
        types = re.findall(r"celtypes\.(\w+?)Type'", message) or re.findall(r"'(\w+)'>", message)
        symbol = _OPERATORS.get(overload.group(1), overload.group(1))
        message = f"cannot apply {symbol!r} to {' and '.join(t.lower() for t in types)}"
    if message.startswith("no such member in mapping"):
        message += " (use has(...) to test whether a field exists)"
    return message


def _json_value(value: Any) -> Any:
    """A CEL value as plain JSON data (CEL's types subclass Python's)."""
    if isinstance(value, celtypes.BoolType | bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _json_value(item) for key, item in value.items()}
    return None if value is None else str(value)


def _type_name(value: Any) -> str:
    name = type(value).__name__
    return name[:-4].lower() if name.endswith("Type") else name


_FUNCTIONS_USED = {**_NUMERIC_COMPARISONS, **BUDGETED_FUNCTIONS}
_ENV = celpy.Environment(
    annotations={name: celtypes.MapType for name in VARIABLES}, runner_class=BudgetedRunner
)


def holds(condition: Condition | None, variables: dict[str, Any], what: str) -> bool:
    """Whether a journey rule applies: no condition always does; one that cannot be evaluated
    (say, a missing property) does not, and the reason is logged for whoever wonders why."""
    if condition is None:
        return True
    try:
        return condition.evaluate(variables)
    except ConditionEvalError as exc:
        _log.info("%s: condition %r not met: %s", what, condition.source, exc)
        return False
