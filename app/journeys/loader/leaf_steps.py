"""The step kinds that hold no steps of their own (wait, update_profile; send is with the
messages it sends), apart from `steps.py`, which parses step lists and the kinds nesting them.
"""

from __future__ import annotations

import re
from datetime import time
from functools import partial
from types import MappingProxyType

from app.journeys.definition import Step, UpdateProfileStep, WaitStep, WaitUntilStep
from app.journeys.language.values import TIME_PATTERN
from app.journeys.loader.checker import _FAILED, _Checker, _Field, _json
from app.journeys.templates import Template, compile_template
from app.yamlfiles.wording import describe

_TIME = re.compile(TIME_PATTERN)
_TIME_HINT = 'write a 24-hour time as HH:MM in quotes, e.g. "09:00" or "18:30"'


def _wait_step(c: _Checker, f: _Field, path: str) -> Step | None:
    """`wait: 1h` (a duration) or `wait: {until: "09:00"}` (the next such local time)."""
    if isinstance(f.value, dict):
        c.keys(f.value, f.key, "wait", ("until",), hints={"for": "for a duration write wait: 1h"})
        until = c.field(f.value, "until")
        at = _time_of_day(c, until, "wait.until") if until else None
        return WaitUntilStep(path, at) if at else None
    duration = c.duration(f, "wait")
    return WaitStep(path, duration) if duration else None


def _time_of_day(c: _Checker, f: _Field, what: str) -> time | None:
    if not isinstance(f.value, str):
        c.error(f.at, f'{what} must be a time like "09:00", not {describe(f.value)}', _TIME_HINT)
        return None
    if (match := _TIME.fullmatch(f.value)) is None:
        hint = _TIME_HINT
        if re.fullmatch(r"[0-9]:[0-5][0-9]", f.value):
            hint = f'write the hour with two digits: "0{f.value}"'
        c.error(f.at, f"{what}: {f.value!r} is not a time of day", hint)
        return None
    return time(int(match.group(1)), int(f.value[3:]))


def _update_profile_step(c: _Checker, f: _Field, path: str) -> Step | None:
    """`update_profile: {set: {trait: value}}`; string values are templates."""
    before = len(c.issues)
    example = "e.g. update_profile: {set: {cart_nudged: true}}"
    if (update := c.mapping(f, "update_profile", example)) is None:
        return None
    c.keys(update, f.key, "update_profile", ("set",))
    if (set_field := c.field(update, "set")) is None:
        return None
    if (traits := c.mapping(set_field, "update_profile.set", example)) is None:
        return None
    if not traits:
        c.error(set_field.at, "update_profile.set must name at least one trait", example)
    values: dict[str, Template | str | int | float | bool | None] = {}
    for key in traits:
        value = c.entry(traits, key)
        if not isinstance(key, str) or not key.strip():
            c.error(
                value.key,
                f"a trait name must be text, not {describe(key)}",
                'write it in quotes, e.g. "2024_buyer": true',
            )
        elif isinstance(value.value, dict | list):
            c.error(
                value.at,
                f"trait {key!r} must be a single value, not {describe(value.value)}",
                "set text, a number, true/false or null; give each trait its own key, "
                "e.g. address_city: Paris",
            )
        elif isinstance(value.value, str):
            compile = partial(compile_template, html=False)
            if value.value == "":  # an empty text is a value, not a mistake
                values[key] = compile("")
            elif (template := c.compiled(value, f"trait {key!r}", compile)) is not None:
                values[key] = template
        elif (plain := _json(c, value, f"trait {key!r}")) is not _FAILED:
            values[key] = plain
    if len(c.issues) > before:
        return None
    return UpdateProfileStep(path, MappingProxyType(values))
