"""`trigger: {segment: <id>, on: enter | exit, when: ...}`: a trip starts when the person
enters (or leaves) a segment or a lifecycle stage, instead of on an event.

Kept apart from the event rule so the journey language gains one trigger kind and nothing
else changes: a trigger mapping with `segment` is read here, any other by `_event_rule`.
Whether the segment exists is not checked here: segments load from their own directory, and a
journey may be written before its segment (it starts nobody until the segment exists).
"""

from __future__ import annotations

import re
from typing import Literal

from app.journeys.conditions import Condition, compile_condition
from app.journeys.loader.checker import _Checker, _event_rule, _Field
from app.yamlfiles.wording import describe

ON = ("enter", "exit")
_SEGMENT_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,99}")

# (event, when, segment, on): the fields of `Trigger`.
TriggerParts = tuple[str, Condition | None, str | None, Literal["enter", "exit"]]


def trigger(c: _Checker, f: _Field) -> TriggerParts | None:
    """The journey's trigger: an event rule, or a segment rule when `segment` is given."""
    if not (isinstance(f.value, dict) and "segment" in f.value):
        event = _event_rule(c, f, "trigger", hints={"on": "on goes with segment: {segment: x}"})
        return None if event is None else (event[0], event[1], None, "enter")
    rule = f.value
    c.keys(
        rule,
        f.key,
        "trigger",
        ("segment",),
        ("on", "when"),
        {"event": "a trigger is an event or a segment, not both"},
    )
    segment = c.text(s, "trigger.segment") if (s := c.field(rule, "segment")) else None
    if segment is not None and not _SEGMENT_ID.fullmatch(segment):
        c.error(
            c.field(rule, "segment").at,  # type: ignore[union-attr]
            f"trigger.segment must be a segment id, not {describe(segment)}",
            "the id: of a file in segments/, or a lifecycle stage, e.g. frequent-abandoners",
        )
        segment = None
    on: Literal["enter", "exit"] = "enter"
    if (o := c.field(rule, "on")) is not None:
        if o.value == "exit":
            on = "exit"
        elif o.value != "enter":
            c.error(o.at, f"trigger.on must be enter or exit, not {describe(o.value)}")
            return None
    when = c.field(rule, "when")
    condition = (
        c.compiled(when, "trigger.when", compile_condition, "e.g. profile.computed.carts_30d >= 3")
        if when
        else None
    )
    if segment is None or (when is not None and condition is None):
        return None
    return "", condition, segment, on
