"""A file's text and its YAML, kept as ruamel.yaml round-trip nodes: unlike plain data, each
node remembers the line and column it was written at, which every later message points to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from app.yamlfiles.issues import FileInvalid, Issue

# Parts of the YAML parser's messages → what to do about them.
_YAML_HINTS = {
    "'\\t'": "indent with spaces, not tabs",
    "mapping values are not allowed": 'put quotes around a value that contains ": "',
    "duplicate key": "each key may appear only once in a mapping",
    "cannot start any token": "put quotes around the value",
}


def read_text(path: Path) -> str:
    """The file's UTF-8 text; raise `FileInvalid` saying where it is not readable text."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        issue = Issue(str(path), line, 1, "file is not valid UTF-8 text")
    except OSError as exc:
        issue = Issue(str(path), 1, 1, f"cannot read file: {exc.strerror}")
    raise FileInvalid([issue])


def parse_yaml(text: str, file: str) -> Any:
    """The document as round-trip nodes; raise `FileInvalid` at the first syntax error (the
    parser cannot go on past one)."""
    yaml = YAML(typ="rt")  # one instance per call is safe across threads
    yaml.preserve_quotes = True  # so positions inside quoted scalars can be computed
    try:
        return yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = str(exc.problem or exc.context or "invalid YAML")
        hint = next((h for part, h in _YAML_HINTS.items() if part in problem), None)
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        issue = Issue(file, line, column, f"invalid YAML: {problem}", hint)
    except YAMLError as exc:
        issue = Issue(file, 1, 1, f"invalid YAML: {exc}")
    raise FileInvalid([issue])
