"""The values every part of a journey is written with: text that is not blank, durations,
times, CEL conditions and Jinja2 templates. Each is a constrained `str`, so the JSON Schema
gives editors the same pattern the model checks; what a pattern cannot see (a CEL syntax
error, an undefined template variable) is checked by compiling the text in a validator, whose
error `app.yamlfiles` places at the character at fault, as the loader always has."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from app.journeys import conditions
from app.journeys.conditions import ConditionSyntaxError, compile_condition
from app.journeys.templates import LOCALE_PATTERN, TemplateSyntaxError, compile_template

ID_PATTERN = r"[a-z0-9][a-z0-9-]*"  # a journey's id
MAX_ID_LENGTH = 100  # journey_versions.journey_id is VARCHAR(100)
TIME_PATTERN = r"([01][0-9]|2[0-3]):[0-5][0-9]"  # `wait: {until: "09:00"}`, 24-hour clock
MESSAGE_NAME_PATTERN = r"[a-z0-9][a-z0-9_-]*"

NOT_BLANK = r"\S"  # empty and blank text is refused everywhere

Text = Annotated[str, Field(pattern=NOT_BLANK)]
# A whole number and a unit, greater than zero (a wait of nothing is a mistake).
Duration = Annotated[str, Field(pattern="^0*[1-9][0-9]*[smhd]$", examples=["1h", "7d"])]
# A time in a test, counted from its first event: zero is allowed.
Offset = Annotated[str, Field(pattern="^[0-9]+[smhd]$", examples=["0s", "30m", "1h"])]
TimeOfDay = Annotated[str, Field(pattern=f"^{TIME_PATTERN}$", examples=["09:00", "18:30"])]
MessageName = Annotated[str, Field(pattern=f"^{MESSAGE_NAME_PATTERN}$")]
LocaleTag = Annotated[str, Field(pattern=f"^{LOCALE_PATTERN}$")]


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

CONDITION = (
    "A CEL expression that is true or false, over `event` (the event: event.event, "
    "event.properties) and `profile` (profile.traits, profile.email, profile.phone). "
    "Compiled when the file is loaded."
)
DURATION = "A whole number and a unit: s, m, h or d (30s, 15m, 1h, 7d); greater than zero."
OFFSET = "A time counted from the test's first event: 0s, or a duration such as 30m or 1h."
