"""Validate a YAML file into a pydantic model, with pydantic's errors told in the file's terms.

The model is the one description of the file format: it validates the file and its
`model_json_schema()` is what editors complete and underline with. Pydantic reports every
error of a document in one pass; each is placed here on the YAML node its `loc` leads to and
worded for a marketer (`trigger is missing required key 'event'`, `weight must be a whole
number, not '50'`). A validator gives its own words by raising `PydanticCustomError` (or
`ValueError`), where `{name}` stands for the value's name and `{value}` for the value
(`"{name} must not be empty"`; without `{name}` the message follows `name: `); its context
may carry a `hint`, a `line` and `column` inside the scalar (a syntax error inside a
condition or a template) to point at the exact character, and a `key`: the key of the mapping
at fault, when a validator of the whole mapping finds one of its values wrong.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Tag, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError
from typing_extensions import TypeAliasType

from app.yamlfiles.issues import FileInvalid, Issue
from app.yamlfiles.positions import inner_position, node_position, present
from app.yamlfiles.reading import parse_yaml, read_text
from app.yamlfiles.wording import allowed_hint, describe

M = TypeVar("M", bound=BaseModel)
# How a value is named in messages, from the document and its place in it.
Namer = Callable[[Any, tuple[str | int, ...]], str]

# What a value of the wrong type should have been, by pydantic error type.
_EXPECTED = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "dict_type": "a mapping of keys",
    "model_type": "a mapping of keys",
    "model_attributes_type": "a mapping of keys",
    "list_type": "a list",
    "tuple_type": "a list",
    "sequence_str": "a list",
}


class YamlModel(BaseModel):
    """The base of a file's models: an unknown key is an error (a typo must not be ignored),
    nothing is coerced (`"50"` is text, not a number) and a loaded model does not change.
    `mistakes`: keys a marketer is known to write here by mistake, with what to do instead
    (the hint for them, in place of the did-you-mean)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
    mistakes: ClassVar[dict[str, str]] = {}


def load_yaml_model(path: Path, model: type[M], what: str = "the file", context: Any = None) -> M:
    """The file at `path` as `model`; raise `FileInvalid` with every problem it has."""
    return validate_yaml(read_text(path), str(path), model, what, context)


def validate_yaml(
    text: str, file: str, model: type[M], what: str = "the file", context: Any = None
) -> M:
    """`text` (named `file` in messages) as `model`. `what` names the whole document in
    messages about it (`the journey is missing required key 'name'`); `context` is passed
    to the model's validators."""
    return validate_document(parse_yaml(text, file), text, file, model, what, context)


def validate_document(
    document: Any,
    text: str,
    file: str,
    model: type[M],
    what: str = "the file",
    context: Any = None,
    names: Namer | None = None,
) -> M:
    """`document` (the round-trip YAML of `text`) as `model`: for a caller that reads the
    document's nodes again after validation, so the file is parsed once. `names` names a
    value in messages from its place in the document (default: its dotted path)."""
    try:
        return model.model_validate(_plain(document), context=context)
    except ValidationError as exc:
        lines = text.splitlines()
        issues = {
            _issue(file, lines, document, model, error, what, expected, names or dotted_name)
            for error, expected in _one_reading(document, exc.errors())
        }
        raise FileInvalid(sorted(issues, key=lambda i: (i.line, i.column, i.message))) from None


def _plain(node: Any) -> Any:
    """Round-trip nodes as plain data, so a model holds `str`, not ruamel's scalar types."""
    if isinstance(node, dict):
        return {_plain(key): _plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_plain(item) for item in node]
    if isinstance(node, str):
        return str(node)
    if isinstance(node, int) and not isinstance(node, bool):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node


def _one_reading(document: Any, errors: list[ErrorDetails]) -> list[tuple[ErrorDetails, list[str]]]:
    """The errors to report, each with what its value should have been.

    A value that may be written several ways (`wait: 1h` or `wait: {until: "09:00"}`) gets
    an error from each way it is not. Only those of the way it was meant are kept: a type
    mismatch is dropped when another error lies at or below its value (a way the value's type
    fits), and the mismatches left at one value become one, naming every way."""
    places = [present(document, error["loc"]) for error in errors]
    deeper = {
        place[:cut]
        for error, place in zip(errors, places, strict=True)
        if error["type"] not in _EXPECTED
        for cut in range(len(place) + 1)
    }
    kept: list[tuple[ErrorDetails, list[str]]] = []
    ways: dict[tuple[str | int, ...], list[str]] = {}
    for error, place in zip(errors, places, strict=True):
        if error["type"] not in _EXPECTED:
            kept.append((error, []))
        elif place not in deeper:
            if place not in ways:
                ways[place] = []
                kept.append((error, ways[place]))
            if (way := _EXPECTED[error["type"]]) not in ways[place]:
                ways[place].append(way)
    return kept


def _issue(
    file: str,
    lines: Sequence[str],
    document: Any,
    model: type[BaseModel],
    error: ErrorDetails,
    what: str,
    expected: list[str],
    names: Namer,
) -> Issue:
    loc, kind, ctx = error["loc"], error["type"], error.get("ctx") or {}
    on_key = loc[-1:] == ("[key]",)  # pydantic's name for a mapping's key: the key is at fault
    loc = loc[:-1] if on_key else loc
    if "key" in ctx:
        key = ctx["key"]
        loc = (*loc, *(key if isinstance(key, list) else [str(key)]))
    hint = ctx.get("hint")
    if kind == "missing":
        section = names(document, present(document, loc[:-1])) or what
        at = node_position(document, loc[:-1], key=True)
        message = f"{section} is missing required key {loc[-1]!r}"
        return Issue(file, *at, message, str(hint) if hint is not None else None)
    if kind == REFUSED:
        at = node_position(document, loc, key=on_key or bool(ctx.get("on_key")))
        return Issue(file, *at, error["msg"], str(hint) if hint is not None else None)
    if kind == "extra_forbidden":
        section = names(document, present(document, loc[:-1])) or what
        found = _model_at(model, loc[:-1])
        allowed = [f.alias or n for n, f in found.model_fields.items()] if found else []
        hint = allowed_hint(str(loc[-1]), allowed) if allowed else None
        if found is not None and issubclass(found, YamlModel):
            hint = found.mistakes.get(str(loc[-1]), hint)
        at = node_position(document, loc, key=True)
        return Issue(file, *at, f"unknown key {str(loc[-1])!r} in {section}", hint)
    value, shown = error["input"], names(document, present(document, loc)) or what
    at = node_position(document, loc)
    if on_key:
        shown, at = "a key", node_position(document, loc, key=True)
        if kind == "literal_error":  # the keys of the mapping are a few names
            section = names(document, present(document, loc[:-1])) or what
            message = f"unknown key {str(value)!r} in {section}"
            choices = re.findall(r"'([^']*)'", str(ctx["expected"]))
            return Issue(file, *at, message, allowed_hint(str(value), choices))
    if "line" in ctx and "column" in ctx:
        at = inner_position(lines, at, str(value), int(ctx["line"]), int(ctx["column"]))
    if kind in _EXPECTED:
        message = f"{shown} must be {' or '.join(expected)}, not {describe(value)}"
        if expected == ["text"] and hint is None:
            hint = _quote_hint(value)
    elif kind in ("too_short", "string_too_short") or (
        kind == "string_pattern_mismatch" and not str(value).strip()
    ):
        message = f"{shown} must not be empty"
    elif kind == "literal_error":
        words = [word.strip("'") for word in re.findall(r"'[^']*'|\w+", str(ctx["expected"]))]
        choices = [word.lower() if word in ("True", "False") else word for word in words]
        message = f"{shown} must be {_listed([c for c in choices if c != 'or'])}, not "
        message += describe(value)
        if isinstance(value, str) and hint is None:
            hint = allowed_hint(value, [c for c in choices if c != "or"])
    elif kind == "value_error":
        message = f"{shown}: {ctx['error']}"
    else:
        message = error["msg"] if "{name}" in error["msg"] else f"{shown}: {error['msg']}"
        message = message.replace("{name}", shown).replace("{value}", describe(value))
    return Issue(file, *at, message, str(hint) if hint is not None else None)


REFUSED = "refused"  # the error type of `refusal`


def refusal(
    message: str,
    hint: str | None = None,
    key: str | list[str | int] | None = None,
    on_key: bool = False,
) -> PydanticCustomError:
    """A validator's error told in its own words, whole (`unknown step kind 'wiat'`), where
    naming the value first would say nothing more. `key`: the value of that key (or of that
    path of keys and indexes) is at fault; its key itself, with `on_key`."""
    context: dict[str, Any] = {"on_key": on_key}
    if hint is not None:
        context["hint"] = hint
    if key is not None:
        context["key"] = key
    return PydanticCustomError(REFUSED, message, context)


def _listed(choices: list[str]) -> str:
    """`hour, day or week`."""
    return " or ".join([", ".join(choices[:-1]), choices[-1]] if len(choices) > 1 else choices)


def _quote_hint(value: Any) -> str | None:
    if isinstance(value, dict):  # `subject: {{ x }}` is a YAML mapping
        return 'text that starts with { must be quoted: "{{ ... }}"'
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f'write it in quotes: "{value}"'
    return None


def dotted_name(document: Any, place: tuple[str | int, ...]) -> str:
    """The dotted name of the value at `place` (keys and indexes of the document) as written
    in the file (`steps[0].wait`)."""
    name = ""
    for part in place:
        name = f"{name}[{part}]" if isinstance(part, int) else f"{name}.{part}".lstrip(".")
    return name


def _model_at(model: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model of the mapping at `loc`, whose keys a did-you-mean hint lists."""
    annotation: Any = model
    for part in loc:
        annotation = _inside(annotation, part)
    for member in _members(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel):
            return member
    return None


def _inside(annotation: Any, part: str | int) -> Any:
    """The type of the value reached from a value of type `annotation` through `part`."""
    if isinstance(part, str) and part in (tagged := _tagged(annotation)):
        return tagged[part]  # pydantic names a discriminated union's member by its tag
    for member in _members(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel):
            for name, field in member.model_fields.items():
                if part in (name, field.alias):
                    return field.annotation
            if part == member.__name__:  # pydantic's name for a union member
                return member
        origin, args = get_origin(member), get_args(member)
        if isinstance(part, int) and origin in (list, tuple, Sequence) and args:
            return args[0]
        if isinstance(part, str) and origin in (dict, Mapping) and len(args) == 2:
            return args[1]
    return annotation  # a part that names no value (a validator's name): stay


def _tagged(annotation: Any) -> dict[str, Any]:
    """The members of a discriminated union `annotation`, by tag."""
    annotation = _unaliased(annotation)
    while get_origin(annotation) is Annotated:
        annotation = _unaliased(get_args(annotation)[0])
    if get_origin(annotation) not in (Union, types.UnionType):
        return {}
    return {
        str(meta.tag): arg
        for arg in get_args(annotation)
        if get_origin(arg) is Annotated
        for meta in arg.__metadata__
        if isinstance(meta, Tag)
    }


def _unaliased(annotation: Any) -> Any:
    return annotation.__value__ if isinstance(annotation, TypeAliasType) else annotation


def _members(annotation: Any) -> list[Any]:
    """The types a value of `annotation` may have (aliases, Annotated and unions unwrapped)."""
    annotation = _unaliased(annotation)
    while get_origin(annotation) is Annotated:
        annotation = _unaliased(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        return [member for arg in get_args(annotation) for member in _members(arg)]
    return [annotation]
