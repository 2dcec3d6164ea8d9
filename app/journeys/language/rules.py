"""Event rules: `trigger`, `exit_when`, `goal` and `wait_for` each name an event and an
optional CEL condition on it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from app.journeys.language.values import CONDITION, Condition, Text
from app.yamlfiles import YamlModel


class EventRule(YamlModel):
    event: Text = Field(
        description="The event name, exactly as the shop sends it (e.g. Order Completed)."
    )
    when: Condition | None = Field(
        None,
        description="Optional CEL condition on the event and the profile, e.g. "
        f"event.properties.total >= 20. {CONDITION}",
    )


class SegmentRule(YamlModel):
    """A trip starts when the person enters (or leaves) a segment or a lifecycle stage.
    Whether the segment exists is not checked here: segments load from their own directory,
    and a journey may be written before its segment (it starts nobody until then)."""

    segment: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,99}$",
        description="The id: of a file in segments/, or a lifecycle stage, e.g. "
        "frequent-abandoners.",
    )
    on: Literal["enter", "exit"] = Field(
        "enter", description="enter (default): on joining the segment; exit: on leaving it."
    )
    when: Condition | None = Field(
        None,
        description="Optional CEL condition on the profile, e.g. "
        f"profile.computed.carts_30d >= 3. {CONDITION}",
    )
