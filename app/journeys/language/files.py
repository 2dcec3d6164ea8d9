"""Journey YAML files → validated `Journey` objects, or every problem as `file:line:column`.

A file is validated by the language's model (each mistake placed on its YAML node by
`app.yamlfiles`), compiled (`compile`), then checked across its parts (`checks`): one
description of the language, so what editors are told (the JSON Schema) and what a file is
held to cannot drift apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.journeys.definition import Journey
from app.journeys.language.checks import SegmentChannels, journey_issues
from app.journeys.language.compile import compile_journey
from app.journeys.language.document import journey_model
from app.yamlfiles import FileInvalid, Issue, parse_yaml, read_text
from app.yamlfiles.models import dotted_name, validate_document
from app.yamlfiles.positions import START, Pos, node_position

__all__ = ["Issue", "JourneyInvalid", "load_directory", "load_path", "parse_journey"]


class JourneyInvalid(FileInvalid):
    """A journey file has problems; `issues` lists all of them."""


def parse_journey(text: str, file: str, segments: SegmentChannels | None = None) -> Journey:
    """Parse one journey file's text; raise `JourneyInvalid` with all its issues. With
    `segments`, a `channel: preferred` send is also checked against their channels (a
    version read back from the database is not: the segments may have changed since)."""
    return _parse(text, file, segments)[0]


def load_directory(
    path: Path, segments: SegmentChannels | None = None
) -> tuple[list[Journey], list[Issue]]:
    """Every `*.yaml` / `*.yml` file directly in `path`, in name order.

    An invalid file gives issues and no journey. A journey id already used by an earlier file
    is an issue too, and the later file is left out, so an id always means one journey."""
    if not path.is_dir():
        return [], [Issue(str(path), 1, 1, "journeys directory not found")]
    journeys: list[Journey] = []
    issues: list[Issue] = []
    owners: dict[str, str] = {}
    for file in sorted(path.iterdir()):
        if file.suffix not in (".yaml", ".yml") or file.name.startswith(".") or file.is_dir():
            continue
        try:
            journey, id_pos = _parse(_read(file), str(file), segments)
        except JourneyInvalid as exc:
            issues.extend(exc.issues)
            continue
        if journey.id in owners:
            message = f"journey id {journey.id!r} is already used by {owners[journey.id]}"
            issues.append(Issue(str(file), *id_pos, message, "give each journey its own id"))
            continue
        owners[journey.id] = str(file)
        journeys.append(journey)
    return journeys, issues


def load_path(
    path: Path, segments: SegmentChannels | None = None
) -> tuple[list[Journey], list[Issue]]:
    """A single journey file, or a directory of them."""
    if path.is_dir():
        return load_directory(path, segments)
    try:
        return [parse_journey(_read(path), str(path), segments)], []
    except JourneyInvalid as exc:
        return [], exc.issues


def _read(path: Path) -> str:
    try:
        return read_text(path)
    except FileInvalid as exc:
        raise JourneyInvalid(exc.issues) from None


def _parse(text: str, file: str, segments: SegmentChannels | None) -> tuple[Journey, Pos]:
    """The journey, and where its id is written (for duplicate-id issues)."""
    try:
        document = parse_yaml(text, file)
        if not isinstance(document, dict):
            message = "a journey file must be a mapping with id, name, trigger and steps"
            raise FileInvalid([Issue(file, *START, message)])
        model = validate_document(
            document, text, file, journey_model(), "the journey", names=value_name
        )
    except FileInvalid as exc:
        raise JourneyInvalid(exc.issues) from None
    journey = compile_journey(model, text, file)
    if issues := journey_issues(journey, document, file, segments):
        raise JourneyInvalid(issues)
    return journey, node_position(document, ("id",))


STEP_LISTS = ("steps", "on_timeout", "else")  # the keys whose value is a list of steps


def value_name(document: Any, place: tuple[str | int, ...]) -> str:
    """A step's parts are named from its kind, as the step reads (`wait.until`, `branch.when`,
    `a split arm`; a send's content by its key, `text`, and the send by its channel), since
    the position already says which step; the rest by its dotted path (`re_entry.cooldown`,
    `messages.welcome.sms.text`)."""
    start = max(
        (
            at + 1
            for at in range(1, len(place))
            if place[at - 1] in STEP_LISTS and isinstance(place[at], int)
        ),
        default=len(place),
    )
    if start == len(place):
        return dotted_name(document, place)
    step = _at(document, place[:start])
    inner = [part for part in place[start:] if isinstance(part, str)]
    if isinstance(place[-1], int) and place[-2] in ("branch", "split"):
        arm = _at(step, place[start:])
        return _ARMS[str(place[-2]), isinstance(arm, dict) and any(k in arm for k in _ARM_KINDS)]
    if inner == ["send"] and isinstance(step["send"], dict) and "channel" in step["send"]:
        return f"send ({step['send']['channel']})"
    if inner[0] == "send" and len(inner) > 1:
        return ".".join(inner[1:])
    if inner[:2] == ["update_profile", "set"] and len(inner) == 3:
        return f"trait {inner[2]!r}"
    dotted = ".".join(inner)
    return _ARM_PARTS.get(dotted, dotted)


_ARM_PARTS = {"split.weight": "weight", "split.name": "arm name", "split.holdout": "holdout"}


_ARM_KINDS = ("else", "holdout")  # the arm that is not like the others, in a branch / split
_ARMS = {
    ("branch", False): "a branch arm",
    ("branch", True): "an else arm",
    ("split", False): "a split arm",
    ("split", True): "a holdout arm",
}


def _at(node: Any, place: tuple[str | int, ...]) -> Any:
    for part in place:
        node = node[part]
    return node
