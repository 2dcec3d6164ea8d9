"""Event rules: `trigger`, `exit_when`, `goal` and `wait_for` each name an event and an
optional CEL condition on it."""

from __future__ import annotations

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
