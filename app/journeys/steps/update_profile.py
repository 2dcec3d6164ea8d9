"""`update_profile: {set: {trait: value}}` — write traits as the journey's own event.

Traits go through the same last-write-wins upsert as identify calls, stamped with the
journey's clock, so a later identify from the shop still wins over an older journey write."""

from __future__ import annotations

import logging
from typing import Any

from app import clock
from app.journeys.definition import UpdateProfileStep
from app.journeys.steps.context import Outcome, StepContext
from app.journeys.templates import Template, TemplateRenderError
from app.profiles import repository

log = logging.getLogger(__name__)


def run(ctx: StepContext, step: UpdateProfileStep) -> Outcome:
    values: dict[str, Any] = {}
    for name, value in step.set.items():
        if isinstance(value, Template):
            try:
                values[name] = value.render(ctx.variables)
            except TemplateRenderError as exc:  # the trait is left as it was
                log.warning(
                    "instance %s step %s: trait %s not set: %s",
                    ctx.instance.id,
                    step.path,
                    name,
                    exc,
                )
                continue
        else:
            values[name] = value
    message_id = f"journey-{ctx.instance.id}-{step.path}"
    repository.upsert_traits(ctx.session, ctx.instance.profile_id, values, clock.now(), message_id)
    ctx.profile["traits"] = {**ctx.profile.get("traits", {}), **values}
    return Outcome.NEXT
