"""`carillon journeys schema`: a JSON Schema editors can use, that agrees with validation.

Everything the schema rejects validation rejects too (one corpus of broken files for both),
every real journey passes both, and what only validation can check is listed, so that the
documented boundary between the two stays true."""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from ruamel.yaml import YAML
from typer.testing import CliRunner

from app.cli import app
from app.journeys.language.files import JourneyInvalid, parse_journey
from app.journeys.language.steps import BARE, KINDS
from app.journeys.schema import journey_schema
from channels import registry
from tests.channels.third_party import push_channel
from tests.helpers import model_issues

REPO = Path(__file__).resolve().parents[2]
FILES = sorted([*(REPO / "journeys").glob("*.yaml"), *(REPO / "docs" / "examples").glob("*.yaml")])
HEAD = "id: demo\nname: Demo\ntrigger:\n  event: Signed Up\n"
SMS = "{channel: sms, text: Hi}"


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = journey_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def data(text: str) -> Any:
    """The document as plain data, as an editor's YAML 1.2 parser sees it."""
    return YAML(typ="safe", pure=True).load(text)


def schema_errors(validator: Draft202012Validator, text: str) -> list[str]:
    return [error.message for error in validator.iter_errors(data(text))]


def validation_rejects(text: str) -> bool:
    try:
        parse_journey(text, "j.yaml")
    except JourneyInvalid:
        return True
    return False


def test_the_schema_is_valid_draft_2020_12() -> None:
    schema = journey_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_every_shipped_journey_and_example_validates(
    validator: Draft202012Validator, path: Path
) -> None:
    text = path.read_text(encoding="utf-8")
    assert schema_errors(validator, text) == []
    assert model_issues(text) == []  # the models the schema is made from
    parse_journey(text, str(path))  # and validation agrees


def test_the_examples_are_there() -> None:
    assert "cart_winback.yaml" in [p.name for p in FILES]
    assert len(FILES) >= 4


def test_the_cli_prints_the_schema_as_json() -> None:
    result = CliRunner().invoke(app, ["journeys", "schema"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed == journey_schema()
    Draft202012Validator.check_schema(printed)


# --- the schema follows the step kinds and the channel registry -----------------------------


def test_every_step_kind_is_in_the_schema() -> None:
    schema = journey_schema()
    defs = schema["$defs"]
    options = defs["step"]["oneOf"]
    refs = [option["$ref"].rsplit("/", 1)[1] for option in options if "$ref" in option]
    assert refs == list(KINDS)
    for kind in KINDS:
        assert kind in defs[kind]["required"], kind
    assert [option["const"] for option in options if "const" in option] == list(BARE)


def test_channels_and_content_keys_come_from_the_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def channels(schema: dict[str, Any]) -> dict[str, list[str]]:
        options = schema["$defs"]["send"]["properties"]["send"]["oneOf"]
        return {
            o["properties"]["channel"]["const"]: sorted(set(o["required"]) - {"channel"})
            for o in options
        }

    assert channels(journey_schema()) == {
        **{name: sorted(registry.required_content(name)) for name in registry.names()},
        "preferred": ["message"],  # the channel chosen per person, the content from messages:
    }
    with push_channel(tmp_path, monkeypatch):
        schema = journey_schema()
        assert channels(schema)["push"] == ["text", "title"]
        push = HEAD + "steps:\n  - send: {channel: push, title: Hi, text: Yo}\n"
        assert list(Draft202012Validator(schema).iter_errors(data(push))) == []
        assert model_issues(push) == []
        assert model_issues(push.replace("text: Yo", "body: Yo")) != []


_MAPS = ("properties", "$defs")  # keywords whose values are name → schema
_ONE = ("items", "contains", "not", "additionalProperties", "propertyNames")
_MANY = ("prefixItems", "oneOf", "anyOf", "allOf")


def _schemas(schema: Any, path: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every subschema, found through the keywords that hold schemas."""
    if not isinstance(schema, dict):
        return
    yield path, schema
    for keyword in _MAPS:
        for name, sub in schema.get(keyword, {}).items():
            yield from _schemas(sub, f"{path}/{keyword}/{name}")
    for keyword in _ONE:
        yield from _schemas(schema.get(keyword), f"{path}/{keyword}")
    for keyword in _MANY:
        for index, sub in enumerate(schema.get(keyword, [])):
            yield from _schemas(sub, f"{path}/{keyword}/{index}")


def test_every_key_has_a_description_for_editors() -> None:
    """Hover help: each key a marketer can write explains itself (directly or via its $ref)."""
    schema = journey_schema()
    defs = schema["$defs"]
    missing = []
    for path, node in _schemas(schema):
        for key, sub in node.get("properties", {}).items():
            target = defs[sub["$ref"].rsplit("/", 1)[1]] if "$ref" in sub else sub
            if "description" not in sub and "description" not in target and "const" not in sub:
                missing.append(f"{path}/properties/{key}")
    assert missing == []
    assert len(list(_schemas(schema))) > 100


# --- one corpus of broken files: the schema and validation both reject each -----------------

BROKEN = {
    "unknown top-level key": "steps: [exit]\npriority: high\n",
    "missing steps": "",
    "empty steps": "steps: []\n",
    "unknown step kind": "steps:\n  - wiat: 1h\n",
    "step with two kinds": f"steps:\n  - wait: 1h\n    send: {SMS}\n",
    "duration without unit": "steps:\n  - wait: 30\n",
    "duration in words": "steps:\n  - wait: 1 hour\n",
    "zero duration": "steps:\n  - wait: 0s\n",
    "until out of range": 'steps:\n  - wait: {until: "24:00"}\n',
    "until without two-digit hour": 'steps:\n  - wait: {until: "9:00"}\n',
    "wait_for without timeout": "steps:\n  - wait_for: {event: Clicked}\n",
    "on_timeout alone": "steps:\n  - on_timeout: [exit]\n",
    "on_timeout beside wait": "steps:\n  - wait: 1h\n    on_timeout: [exit]\n",
    "on_timeout inside wait_for": (
        "steps:\n  - wait_for: {event: X, timeout: 1h, on_timeout: [exit]}\n"
    ),
    "branch with two else": (
        "steps:\n  - branch:\n      - when: 'true'\n        steps: [exit]\n"
        "      - else: [exit]\n      - else: [exit]\n"
    ),
    "branch with only else": "steps:\n  - branch:\n      - else: [exit]\n",
    "branch arm without steps": "steps:\n  - branch:\n      - when: 'true'\n",
    "else with a condition": (
        "steps:\n  - branch:\n      - when: 'true'\n        steps: [exit]\n"
        "      - else: [exit]\n        when: 'false'\n"
    ),
    "split weight 0": (
        "steps:\n  - split:\n      - weight: 0\n        steps: [exit]\n"
        "      - weight: 100\n        steps: [exit]\n"
    ),
    "split weight as text": (
        'steps:\n  - split:\n      - weight: "50"\n        steps: [exit]\n'
        "      - weight: 50\n        steps: [exit]\n"
    ),
    "split with one arm": "steps:\n  - split:\n      - weight: 100\n        steps: [exit]\n",
    "holdout with steps": (
        "steps:\n  - split:\n      - weight: 90\n        steps: [exit]\n"
        "      - holdout: true\n        weight: 10\n        steps: [exit]\n"
    ),
    "two holdouts": (
        "steps:\n  - split:\n      - weight: 80\n        steps: [exit]\n"
        "      - holdout: true\n        weight: 10\n      - holdout: true\n        weight: 10\n"
    ),
    "holdout false": (
        "steps:\n  - split:\n      - weight: 90\n        steps: [exit]\n"
        "      - holdout: false\n        weight: 10\n"
    ),
    "arm named holdout": (
        "steps:\n  - split:\n      - weight: 90\n        name: holdout\n        steps: [exit]\n"
        "      - holdout: true\n        weight: 10\n"
    ),
    "arm name too long": (
        f"steps:\n  - split:\n      - weight: 90\n        name: {'x' * 51}\n        steps: [exit]\n"
        "      - holdout: true\n        weight: 10\n"
    ),
    "nested trait value": "steps:\n  - update_profile: {set: {address: {city: Paris}}}\n",
    "list trait value": "steps:\n  - update_profile: {set: {tags: [a]}}\n",
    "empty update": "steps:\n  - update_profile: {set: {}}\n",
    "unknown channel": "steps:\n  - send: {channel: fax, text: Hi}\n",
    "missing content key": "steps:\n  - send: {channel: email, subject: Hi, text: Hi}\n",
    "content key of another channel": "steps:\n  - send: {channel: sms, text: Hi, subject: Yo}\n",
    "audience id not digits": "steps:\n  - send: {channel: meta_audience, audience_id: abc}\n",
    "re_entry word": "steps: [exit]\nre_entry: sometimes\n",
    "goal without event": "steps: [exit]\ngoal: {within: 7d}\n",
    "goal within zero": "steps: [exit]\ngoal: {event: X, within: 0d}\n",
    "exit_when typo": "steps: [exit]\nexit_when: {event: X, if: 'true'}\n",
    "enabled as text": 'steps: [exit]\nenabled: "yes"\n',
    "tests not a list": "steps: [exit]\ntests: {name: t}\n",
    "test without events": "steps: [exit]\ntests:\n  - {name: t, expect: []}\n",
    "test with no event": "steps: [exit]\ntests:\n  - {name: t, events: [], expect: []}\n",
    "test event without at": (
        "steps: [exit]\ntests:\n  - {name: t, events: [{event: X}], expect: []}\n"
    ),
    "first test event not at zero": (
        "steps: [exit]\ntests:\n  - {name: t, events: [{at: 1h, event: X}], expect: []}\n"
    ),
    "expected channel unknown": (
        "steps: [exit]\ntests:\n"
        "  - {name: t, events: [{at: 0s, event: X}], expect: [{channel: fax}]}\n"
    ),
    "expected field not of the channel": (
        "steps: [exit]\ntests:\n  - name: t\n    events: [{at: 0s, event: X}]\n"
        "    expect: [{channel: sms, contains: {subject: Hi}}]\n"
    ),
    "expected text as a number": (
        "steps: [exit]\ntests:\n  - name: t\n    events: [{at: 0s, event: X}]\n"
        "    expect: [{channel: sms, contains: {text: 42}}]\n"
    ),
    "phone as a number": (
        "steps: [exit]\ntests:\n  - name: t\n    profile: {phone: +33612345678}\n"
        "    events: [{at: 0s, event: X}]\n    expect: []\n"
    ),
}
BROKEN_FILES = {
    "id with capitals": HEAD.replace("id: demo", "id: Demo") + "steps: [exit]\n",
    "trigger without event": HEAD.replace("event: Signed Up", "when: 'true'") + "steps: [exit]\n",
    **{name: HEAD + body for name, body in BROKEN.items()},
}


@pytest.mark.parametrize("name", list(BROKEN_FILES))
def test_the_schema_and_validation_both_reject(validator: Draft202012Validator, name: str) -> None:
    text = BROKEN_FILES[name]
    assert schema_errors(validator, text), f"the schema accepts: {name}"
    assert model_issues(text), f"the models accept: {name}"
    assert validation_rejects(text), f"validation accepts: {name}"


def test_the_corpus_is_broken_only_where_it_says() -> None:
    """Each broken file differs from a valid one: with the head alone and `steps: [exit]`,
    the file is fine, so each rejection above is for its own mistake."""
    assert not validation_rejects(HEAD + "steps: [exit]\n")
    assert model_issues(HEAD + "steps: [exit]\n") == []


# What the schema cannot express; validation catches each (and the docs say so).
LOADER_ONLY = {
    "weights not adding to 100": (
        "steps:\n  - split:\n      - weight: 50\n        steps: [exit]\n"
        "      - weight: 40\n        steps: [exit]\n"
    ),
    "else not last": (
        "steps:\n  - branch:\n      - else: [exit]\n      - when: 'true'\n        steps: [exit]\n"
    ),
    "step after exit": "steps:\n  - exit\n  - wait: 1h\n",
    "step after a branch that always exits": (
        "steps:\n  - branch:\n      - when: 'true'\n        steps: [exit]\n"
        "      - else: [exit]\n  - wait: 1h\n"
    ),
    "two splits": (
        "steps:\n" + "  - split:\n      - weight: 50\n        steps: [wait: 1h]\n"
        "      - weight: 50\n        steps: [wait: 2h]\n" * 2
    ),
    "duplicate arm names": (
        "steps:\n  - split:\n      - weight: 50\n        steps: [exit]\n"
        "      - weight: 50\n        name: A\n        steps: [exit]\n"
    ),
    "CEL syntax error": "steps:\n  - wait_for: {event: X, timeout: 1h, when: 'a = 1'}\n",
    "unknown CEL variable": (
        "steps:\n  - branch:\n      - when: evnt.x == 1\n        steps: [exit]\n"
    ),
    "template syntax error": "steps:\n  - send: {channel: sms, text: '{{ x'}\n",
    "unknown template variable": "steps:\n  - update_profile: {set: {a: '{{ profil.x }}'}}\n",
    "goal pre-empted by exit_when": (
        "steps: [exit]\nexit_when: {event: Order Completed}\ngoal: {event: Order Completed}\n"
    ),
    "test events out of order": (
        "steps: [exit]\ntests:\n  - name: t\n"
        "    events: [{at: 0s, event: X}, {at: 2h, event: Y}, {at: 1h, event: Z}]\n"
        "    expect: []\n"
    ),
    "duplicate test names": (
        "steps: [exit]\ntests:\n"
        "  - {name: t, events: [{at: 0s, event: X}], expect: []}\n"
        "  - {name: t, events: [{at: 0s, event: X}], expect: []}\n"
    ),
}


@pytest.mark.parametrize("name", list(LOADER_ONLY))
def test_what_only_validation_checks(validator: Draft202012Validator, name: str) -> None:
    text = HEAD + LOADER_ONLY[name]
    assert schema_errors(validator, text) == []
    assert validation_rejects(text)


# --- the documentation's examples are real ---------------------------------------------------


def _doc_snippets() -> list[tuple[int, str]]:
    text = (REPO / "docs" / "journeys.md").read_text(encoding="utf-8")
    return [
        (text[: m.start()].count("\n") + 2, m.group(1))
        for m in re.finditer(r"```yaml\n(.*?)```", text, re.S)
    ]


def _as_journey(snippet: str) -> str | None:
    """A whole journey as is; `steps:`, `goal:` or `tests:` fragments completed; the rest
    (a comment line for editors) is not a journey."""
    if snippet.startswith("id:"):
        return snippet
    if snippet.startswith("steps:"):
        return HEAD + snippet
    if snippet.startswith(("goal:", "tests:")):
        return HEAD + "steps: [exit]\n" + snippet
    return None


def test_every_yaml_example_in_the_docs_is_valid(validator: Draft202012Validator) -> None:
    snippets = [(line, _as_journey(s)) for line, s in _doc_snippets()]
    journeys = [(line, text) for line, text in snippets if text is not None]
    assert len(journeys) >= 10
    for line, text in journeys:
        assert schema_errors(validator, text) == [], f"docs/journeys.md:{line}"
        assert model_issues(textwrap.dedent(text)) == [], f"docs/journeys.md:{line}"
        parse_journey(textwrap.dedent(text), f"docs/journeys.md:{line}")


def test_the_docs_show_the_example_file_verbatim() -> None:
    example = (REPO / "docs" / "examples" / "cart_winback.yaml").read_text(encoding="utf-8")
    body = example[example.index("id: cart-winback") :]
    assert any(snippet == body for _, snippet in _doc_snippets())


# --- the models the schema is made from validate files too ------------------------------------


def test_the_models_place_each_mistake_at_its_line_and_column() -> None:
    """What the models refuse is reported through `app.yamlfiles`, at the value to fix."""
    text = HEAD + "steps:\n  - wait: 1 hour\n  - send: {channel: fax, text: Hi}\n"
    issues = model_issues(text)
    assert issues and all(issue.startswith(("j.yaml:6:", "j.yaml:7:")) for issue in issues)
    assert any(issue.startswith("j.yaml:6:11: ") for issue in issues), issues
    assert any("'fax'" in issue for issue in issues), issues
