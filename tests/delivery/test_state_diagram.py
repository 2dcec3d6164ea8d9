"""docs/architecture.md draws the delivery state machine; the drawing must be the table
`app/delivery/state.py` enforces, or a reader learns moves that raise (or misses real ones)."""

from __future__ import annotations

import re

from app.delivery.state import TRANSITIONS
from tests.helpers import REPO

_EDGE = re.compile(r"^\s*(\w+) --> (\w+): (\w+)\s*$", re.MULTILINE)


def test_the_documented_diagram_is_the_state_machines_table() -> None:
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    (diagram,) = re.findall(r"```mermaid\n(stateDiagram-v2\n.*?)```", text, flags=re.DOTALL)
    drawn = {(name, source, target) for source, target, name in _EDGE.findall(diagram)}
    enforced = {
        (t.name, source, target)
        for t in TRANSITIONS
        for source in t.sources
        for target in t.targets
    }
    assert drawn == enforced
