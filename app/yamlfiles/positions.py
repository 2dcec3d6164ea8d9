"""Where a value is written: 1-based (line, column) of the keys, values and list items of a
round-trip YAML document, found by a path of keys and indexes such as pydantic's error `loc`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Pos = tuple[int, int]  # 1-based line, column
START: Pos = (1, 1)


def key_position(mapping: Any, key: Any) -> Pos:
    return _lookup(mapping.lc.key, key)


def value_position(mapping: Any, key: Any) -> Pos:
    """Where the value is written; where its key is when the value is empty."""
    if mapping[key] is None:
        return key_position(mapping, key)
    return _lookup(mapping.lc.value, key)


def item_position(seq: Any, index: int) -> Pos:
    return _lookup(seq.lc.item, index)


def _lookup(lookup: Callable[[Any], tuple[int, int]], key: Any) -> Pos:
    try:
        line, column = lookup(key)
    except (AttributeError, KeyError, IndexError, TypeError):  # e.g. keys merged with `<<:`
        return START
    return line + 1, column + 1


def present(document: Any, path: Sequence[str | int]) -> tuple[str | int, ...]:
    """The parts of `path` that are keys and indexes of the document; the others (the names
    pydantic gives a union's members and validators) lead to no node of their own."""
    found: list[str | int] = []
    node = document
    for part in path:
        is_key = isinstance(node, dict) and part in node  # a key may be a number (`1: one`)
        is_index = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if is_key or is_index:
            found.append(part)
            node = node[part]
    return tuple(found)


def node_position(document: Any, path: Sequence[str | int], key: bool = False) -> Pos:
    """Where the node at `path` is written: its value, or with `key` the key (or list item)
    that leads to it, which is where a mapping's missing keys are reported."""
    node, at, key_at = document, START, START
    for part in present(document, path):
        if isinstance(part, int):
            at = key_at = item_position(node, part)
        else:
            at, key_at = value_position(node, part), key_position(node, part)
        node = node[part]
    return key_at if key else at


def inner_position(lines: Sequence[str], at: Pos, text: str, line: int, column: int) -> Pos:
    """Where (line, column) of a scalar's own text, the scalar written at `at`, is in the file,
    when that is certain (one-line scalars, literal `|` blocks); otherwise `at`."""
    row, col = at
    source = lines[row - 1] if row <= len(lines) else ""
    indicator = source[col - 1 : col]
    if indicator == "|" or (indicator == ">" and line == 1):
        body = [ln for ln in lines[row:] if ln.strip()][:1] or [""]
        indent = len(body[0]) - len(body[0].lstrip(" "))  # the block's indentation
        target = row + line
        content = lines[target - 1] if target <= len(lines) else ""
        return (target, indent + column) if indent + column - 1 <= len(content) else at
    start = col + (1 if indicator in ("'", '"') else 0)
    first = text.splitlines()[0] if text else ""
    same = line == 1 and source[start - 1 :].startswith(first)
    return (row, start + column - 1) if same else at
