"""The values every part of a journey is written with: text that is not blank, durations,
times, CEL conditions and Jinja2 templates. Each is a constrained `str`, so the JSON Schema
gives editors the same pattern the model checks; what a pattern cannot see (a CEL syntax
error, an undefined template variable) is checked by compiling the text in a validator, whose
error `app.yamlfiles` places at the character at fault."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, Union

from pydantic import AfterValidator, BeforeValidator, Discriminator, Field, Tag
from pydantic_core import PydanticCustomError

from app.durations import parse_duration
from app.journeys import conditions
from app.journeys.conditions import ConditionSyntaxError, compile_condition
from app.journeys.templates import (
    LOCALE_PATTERN,
    TemplateSyntaxError,
    canonical_locale,
    compile_template,
)
from app.yamlfiles.models import refusal
from app.yamlfiles.wording import describe

ID_PATTERN = r"[a-z0-9][a-z0-9-]*"  # a journey's id
MAX_ID_LENGTH = 100  # journey_versions.journey_id is VARCHAR(100)
TIME_PATTERN = r"([01][0-9]|2[0-3]):[0-5][0-9]"  # `wait: {until: "09:00"}`, 24-hour clock
MESSAGE_NAME_PATTERN = r"[a-z0-9][a-z0-9_-]*"

NOT_BLANK = r"\S"  # empty and blank text is refused everywhere

Text = Annotated[str, Field(pattern=NOT_BLANK)]
DURATION_HINT = "write a whole number followed by s, m, h or d: 30s, 15m, 1h, 7d"


def _unit_needed(value: Any) -> Any:
    """`wait: 30` is a number: say which unit it needs, not that it is no text."""
    if isinstance(value, int) and not isinstance(value, bool):
        hint = f"write {value}s, {value}m, {value}h or {value}d"
        raise PydanticCustomError("unit", "{name} needs a unit", {"hint": hint})
    return value


def _duration(value: str) -> str:
    try:
        parse_duration(value)
    except ValueError as exc:
        raise PydanticCustomError("duration", str(exc), {"hint": DURATION_HINT}) from None
    return value


# A whole number and a unit, greater than zero (a wait of nothing is a mistake); the pattern
# is the JSON Schema's, `parse_duration` says what is wrong.
Duration = Annotated[
    str,
    Field(json_schema_extra={"pattern": "^0*[1-9][0-9]*[smhd]$"}, examples=["1h", "7d"]),
    BeforeValidator(_unit_needed),
    AfterValidator(_duration),
]


# A time in a test, counted from its first event: zero is allowed.
def _offset(value: str) -> str:
    return value if re.fullmatch("0+[smhd]", value) else _duration(value)


Offset = Annotated[
    str,
    Field(json_schema_extra={"pattern": "^[0-9]+[smhd]$"}, examples=["0s", "30m", "1h"]),
    BeforeValidator(_unit_needed),
    AfterValidator(_offset),
]
TIME_HINT = 'write a 24-hour time as HH:MM in quotes, e.g. "09:00" or "18:30"'


def _time_of_day(value: Any) -> Any:
    if not isinstance(value, str):
        raise PydanticCustomError(
            "time", '{name} must be a time like "09:00", not {value}', {"hint": TIME_HINT}
        )
    if not re.fullmatch(TIME_PATTERN, value):
        hint = TIME_HINT
        if re.fullmatch(r"[0-9]:[0-5][0-9]", value):
            hint = f'write the hour with two digits: "0{value}"'
        raise PydanticCustomError("time", "{name}: {value} is not a time of day", {"hint": hint})
    return value


TimeOfDay = Annotated[
    str,
    Field(json_schema_extra={"pattern": f"^{TIME_PATTERN}$"}, examples=["09:00", "18:30"]),
    BeforeValidator(_time_of_day),
]


def _message_name(name: str) -> str:
    if re.fullmatch(MESSAGE_NAME_PATTERN, name) is None:
        raise refusal(
            f"message name {name!r} is not valid",
            "use lowercase letters, digits, - and _, e.g. welcome or cart_reminder",
        )
    return name


def _locale_tag(tag: str) -> str:
    if re.fullmatch(LOCALE_PATTERN, tag) is None:
        fixed = canonical_locale(tag)
        hint = (
            f"write {fixed}"
            if re.fullmatch(LOCALE_PATTERN, fixed)
            else "a language, then an optional region: fr, en, fr-CA, pt-BR, es-419"
        )
        raise refusal(f"{tag!r} is not a locale tag", hint)
    return tag


MessageName = Annotated[
    str,
    Field(json_schema_extra={"pattern": f"^{MESSAGE_NAME_PATTERN}$"}),
    AfterValidator(_message_name),
]
LocaleTag = Annotated[
    str, Field(json_schema_extra={"pattern": f"^{LOCALE_PATTERN}$"}), AfterValidator(_locale_tag)
]


def placed(exc: ConditionSyntaxError | TemplateSyntaxError) -> PydanticCustomError:
    """A syntax error inside a condition or a template as a validator's error, with where in
    the text it is (`line`, `column`), so the message points at that character."""
    context: dict[str, Any] = {"line": exc.line, "column": exc.column}
    if exc.hint:
        context["hint"] = exc.hint
    return PydanticCustomError("syntax", exc.message, context)


def compile_expression(
    source: str, variables: tuple[str, ...] = conditions.VARIABLES
) -> conditions.Condition:
    """Compile `source` for a validator: its syntax errors placed at their character."""
    try:
        return compile_condition(source, variables)
    except ConditionSyntaxError as exc:
        raise placed(exc) from None


def _condition(source: str) -> str:
    compile_expression(source)
    return source


def template(html: bool = False) -> AfterValidator:
    """The validator of a template's text (`html`: an e-mail's html part, whose links are
    checked too); the text stays the value, compiled again with the journey."""

    def check(source: str) -> str:
        try:
            compile_template(source, html=html)
        except TemplateSyntaxError as exc:
            raise placed(exc) from None
        return source

    return AfterValidator(check)


Condition = Annotated[
    str,
    Field(
        pattern=NOT_BLANK,
        examples=["event.properties.total >= 20", 'profile.traits.lifecycle_stage == "new"'],
    ),
    AfterValidator(_condition),
]


def refused_unless(
    accepts: Callable[[Any], bool], message: str, hint: str | None = None
) -> BeforeValidator:
    """Refuse, in the language's words (`{name}`: the value's name, `{value}`: the value),
    what `accepts` does not, before any check of the value's type words it otherwise."""

    def check(value: Any) -> Any:
        if accepts(value):
            return value
        raise PydanticCustomError("refused_value", message, {"hint": hint} if hint else None)

    return BeforeValidator(check)


def _plain_json(value: Any, path: tuple[str | int, ...] = ()) -> Any:
    """What JSON holds (text, numbers, true/false, null, lists, mappings), or the place of the
    first value it does not (a date, an infinity) refused."""
    if isinstance(value, dict):
        for key, item in value.items():
            _plain_json(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _plain_json(item, (*path, index))
    elif isinstance(value, date | datetime) or (
        isinstance(value, float) and not math.isfinite(value)
    ):
        example = f', e.g. "{value.isoformat()}"' if isinstance(value, date) else ""
        raise PydanticCustomError(
            "json",
            "{name} must be text, a number, true/false, null, a list or a mapping, "
            f"not {describe(value)}",
            {"hint": f"write it in quotes to make it text{example}", "key": list(path)},
        )
    return value


JSON = BeforeValidator(_plain_json)  # data a test sends as it is (an event's properties)


def non_empty(of: str, hint: str, least: int = 1) -> BeforeValidator:
    """The validator of a list of `of` (steps, arms) that holds at least `least` items."""

    def check(value: Any) -> Any:
        if isinstance(value, list) and len(value) >= least:
            return value
        if isinstance(value, list) and value:
            raise PydanticCustomError(
                "few", f"{{name}} needs at least {least} {of}", {"hint": hint}
            )
        raise PydanticCustomError(
            "list", f"{{name}} must be a non-empty list of {of}, not {{value}}", {"hint": hint}
        )

    return BeforeValidator(check)


def by_key(key: str | None, with_key: Any, without: Any) -> Any:
    """`with_key` for a mapping that has `key` (any mapping when `key` is None), else
    `without`: the form meant is known from what is written, so only its errors are told."""

    def form(value: Any) -> str:
        return "with" if isinstance(value, dict) and (key is None or key in value) else "without"

    return Annotated[
        Union[Annotated[with_key, Tag("with")], Annotated[without, Tag("without")]],  # noqa: UP007
        Discriminator(form),
    ]


def one_or_many(one: Any, many: Any) -> Any:
    """`one` written alone, or `many` (a list of them): a list's mistakes are its items'."""

    def form(value: Any) -> str:
        return "many" if isinstance(value, list) else "one"

    return Annotated[
        Union[Annotated[one, Tag("one")], Annotated[many, Tag("many")]],  # noqa: UP007
        Discriminator(form),
    ]


def _journey_id(value: str) -> str:
    if not re.fullmatch(ID_PATTERN, value) or len(value) > MAX_ID_LENGTH:
        raise PydanticCustomError(
            "journey_id",
            "{name} {value} is not a valid journey id",
            {
                "hint": f"use up to {MAX_ID_LENGTH} lowercase letters, digits and dashes, "
                "starting with a letter or digit, e.g. cart-abandonment"
            },
        )
    return value


JourneyId = Annotated[
    str,
    Field(json_schema_extra={"pattern": f"^{ID_PATTERN}$", "maxLength": MAX_ID_LENGTH}),
    AfterValidator(_journey_id),
]

CONDITION = (
    "A CEL expression that is true or false, over `event` (the event: event.event, "
    "event.properties) and `profile` (profile.traits, profile.email, profile.phone). "
    "Compiled when the file is loaded."
)
DURATION = "A whole number and a unit: s, m, h or d (30s, 15m, 1h, 7d); greater than zero."
OFFSET = "A time counted from the test's first event: 0s, or a duration such as 30m or 1h."
