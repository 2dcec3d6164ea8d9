"""A YAML file validated into a typed model: every mistake at once, each at the line and
column of the key or value to fix, in a marketer's words rather than pydantic's."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import pytest
from pydantic import AfterValidator, Discriminator, Field, Tag, field_validator
from pydantic_core import PydanticCustomError

from app.yamlfiles import FileInvalid, Issue, YamlModel, load_yaml_model, validate_yaml


def _not_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank", "{name} must not be blank, not {value}", {"hint": "x"})
    return value


class Rule(YamlModel):
    event: Annotated[str, Field(min_length=1, description="The event name.")]
    label: Annotated[str, AfterValidator(_not_blank)] | None = None
    count: int = 1


class Audience(YamlModel):
    """A small file format of the kind segments and broadcasts are written in."""

    id: Annotated[str, Field(pattern=r"^[a-z0-9-]+$", description="The id.")]
    kind: Literal["marketing", "transactional"] = "marketing"
    rules: Annotated[list[Rule], Field(min_length=1)]
    when: str | None = None

    @field_validator("when")
    @classmethod
    def _compare_with_two_equals(cls, value: str | None) -> str | None:
        if value is not None and "=" in value and "==" not in value:
            at = value.index("=") + 1
            raise PydanticCustomError(
                "condition", "use == to compare", {"hint": "a = b assigns", "line": 1, "column": at}
            )
        return value


def issues_of(text: str) -> list[str]:
    with pytest.raises(FileInvalid) as info:
        validate_yaml(text, "a.yaml", Audience, "the audience")
    return [str(issue) for issue in info.value.issues]


def test_a_valid_file_is_the_model_with_plain_values() -> None:
    text = "id: 'vip'\nrules:\n  - event: Order Completed\n    count: 3\n"
    audience = validate_yaml(text, "a.yaml", Audience)
    assert audience == Audience(id="vip", rules=[Rule(event="Order Completed", count=3)])
    assert type(audience.id) is str  # not ruamel's quoted-string type


def test_every_mistake_is_reported_at_once_in_file_order() -> None:
    text = (
        "id: vip\n"
        "kind: transactionnal\n"
        "rules:\n"
        "  - event: 42\n"
        "    cuont: 2\n"
        "  - count: '3'\n"
        "extra: x\n"
    )
    assert issues_of(text) == [
        "a.yaml:2:7: kind must be marketing or transactional, not 'transactionnal' (hint: did "
        "you mean 'transactional'? allowed: marketing, transactional)",
        "a.yaml:4:12: rules[0].event must be text, not the number 42"
        ' (hint: write it in quotes: "42")',
        "a.yaml:5:5: unknown key 'cuont' in rules[0] (hint: did you mean 'count'? "
        "allowed: event, label, count)",
        "a.yaml:6:5: rules[1] is missing required key 'event'",
        "a.yaml:6:12: rules[1].count must be a whole number, not '3'",
        "a.yaml:7:1: unknown key 'extra' in the audience (hint: allowed: id, kind, rules, when)",
    ]


def test_a_missing_key_points_at_the_mapping_that_lacks_it() -> None:
    assert issues_of("id: vip\n") == ["a.yaml:1:1: the audience is missing required key 'rules'"]
    assert issues_of("id: vip\nrules: []\n") == ["a.yaml:2:8: rules must not be empty"]


def test_a_pattern_mismatch_names_the_value() -> None:
    (issue,) = issues_of("id: VIP\nrules: [{event: X}]\n")
    assert issue.startswith("a.yaml:1:5: id: String should match pattern")


def test_a_validator_words_its_message_with_the_value_and_its_name() -> None:
    assert issues_of("id: vip\nrules: [{event: X, label: ' '}]\n") == [
        "a.yaml:2:27: rules[0].label must not be blank, not ' ' (hint: x)"
    ]


def test_a_validator_error_points_inside_the_text() -> None:
    text = "id: vip\nrules: [{event: X}]\nwhen: 'a = 1'\n"
    assert issues_of(text) == ["a.yaml:3:10: when: use == to compare (hint: a = b assigns)"]


@pytest.mark.parametrize("text", ["", "- a\n", "just text\n"])
def test_a_document_that_is_not_a_mapping(text: str) -> None:
    (issue,) = issues_of(text)
    assert issue.startswith("a.yaml:1:1: the audience must be a mapping of keys, not ")


def test_yaml_syntax_errors_come_with_a_hint() -> None:
    assert issues_of("id: vip\nrules:\n\t- event: X\n") == [
        "a.yaml:3:1: invalid YAML: found character '\\t' that cannot start any token"
        " (hint: indent with spaces, not tabs)"
    ]


def test_a_file_that_is_not_text_or_not_there(tmp_path: Path) -> None:
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"id: vip\n\xff\n")
    with pytest.raises(FileInvalid) as info:
        load_yaml_model(binary, Audience)
    assert info.value.issues == [Issue(str(binary), 2, 1, "file is not valid UTF-8 text")]
    with pytest.raises(FileInvalid) as info:
        load_yaml_model(tmp_path / "none.yaml", Audience)
    assert info.value.issues[0].message.startswith("cannot read file: ")


def test_load_yaml_model_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("id: vip\nrules: [{event: X}]\n", encoding="utf-8")
    assert load_yaml_model(path, Audience).rules == [Rule(event="X")]


# --- a value written one of several ways (a union) ------------------------------------------


class Until(YamlModel):
    until: str


class Wait(YamlModel):
    wait: str | Until


class Send(YamlModel):
    send: dict[str, str]


def _kind(value: object) -> str | None:
    return next(iter(value)) if isinstance(value, dict) and len(value) == 1 else None


Step = Annotated[
    Annotated[Wait, Tag("wait")] | Annotated[Send, Tag("send")],
    Discriminator(_kind, custom_error_type="step", custom_error_message="not a step"),
]


class Steps(YamlModel):
    steps: list[Step]


def step_issues(text: str) -> list[str]:
    with pytest.raises(FileInvalid) as info:
        validate_yaml(text, "s.yaml", Steps)
    return [str(issue) for issue in info.value.issues]


def test_only_the_errors_of_the_way_a_value_was_meant_are_reported() -> None:
    """`wait: {untl: ...}` is a mapping: it was meant as the mapping form, so it is not also
    reported as not being text."""
    assert step_issues("steps:\n  - wait: {untl: '09:00'}\n") == [
        "s.yaml:2:5: steps[0].wait is missing required key 'until'",
        "s.yaml:2:12: unknown key 'untl' in steps[0].wait "
        "(hint: did you mean 'until'? allowed: until)",
    ]


def test_a_value_of_no_way_names_every_way() -> None:
    assert step_issues("steps:\n  - wait: 5\n  - send: {to: 1}\n  - exit\n") == [
        "s.yaml:2:11: steps[0].wait must be text or a mapping of keys, not the number 5",
        "s.yaml:3:16: steps[1].send.to must be text, not the number 1"
        ' (hint: write it in quotes: "1")',
        "s.yaml:4:5: steps[2]: not a step",
    ]
