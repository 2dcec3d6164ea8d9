"""The JSON Schema (draft 2020-12) of journey files, printed by `carillon journeys schema`.

Editors that speak JSON Schema (VS Code and others through the YAML language server) use it
to complete keys, show each key's `description` on hover and underline mistakes while a
marketer types, before any `carillon journeys validate`. It is generated from the journey
language's models (`app.journeys.language`), so the format is described in one place.

A schema cannot see inside CEL conditions or Jinja2 templates, add up split weights, require
`else` to be the last arm of a branch, find steps that can never run, or limit a journey to
one split: those are checked when the file is loaded, with `file:line:column` positions.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from app.journeys.language import journey_model

DIALECT = "https://json-schema.org/draft/2020-12/schema"


def journey_schema() -> dict[str, Any]:
    """The whole journey format as a JSON Schema document."""
    schema = journey_model().model_json_schema(schema_generator=_ForEditors)
    schema = _untitled(schema)
    defs = schema["$defs"]
    # A step and a send are each one of their forms (`oneOf`, as their models discriminate).
    send = defs["send"]["properties"]["send"]
    send["oneOf"] = [_inline(defs, form) for form in send["oneOf"]]
    return {"$schema": DIALECT, "title": "Carillon journey", **schema, "$defs": defs}


class _ForEditors(GenerateJsonSchema):
    """Pydantic's JSON Schema, in the order the models are written (not sorted), with no
    generated titles, and without the `null` an optional key accepts in Python: in a file,
    an optional key is left out, never written empty."""

    def sort(self, value: JsonSchemaValue, parent_key: str | None = None) -> JsonSchemaValue:
        return value

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])

    def dict_schema(self, schema: core_schema.DictSchema) -> JsonSchemaValue:
        """A mapping whose keys follow a pattern refuses the other keys (pydantic's
        `patternProperties` would let them through unchecked)."""
        generated = super().dict_schema(schema)
        if len(patterns := generated.pop("patternProperties", {})) == 1:
            ((pattern, value),) = patterns.items()
            generated["propertyNames"] = {"pattern": pattern}
            generated["additionalProperties"] = value
        elif patterns:
            generated["patternProperties"] = patterns
        return generated

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        generated = super().default_schema(schema)
        if generated.get("default", ...) is None:
            generated.pop("default")
        return generated


def _untitled(node: Any) -> Any:
    """The schema without the titles pydantic gives models (their Python class names)."""
    if isinstance(node, dict):
        return {
            key: _untitled(value)
            for key, value in node.items()
            if not (key == "title" and isinstance(value, str))
        }
    if isinstance(node, list):
        return [_untitled(item) for item in node]
    return node


def _inline(defs: dict[str, Any], option: dict[str, Any]) -> dict[str, Any]:
    """A `$ref` option replaced by the definition it names (each used here only)."""
    name = option["$ref"].rsplit("/", 1)[1]
    return defs.pop(name)
