"""`send:` — render the message now and write it to the outbox in the step's transaction."""

from __future__ import annotations

from app.delivery import outbox
from app.journeys.definition import SendStep
from app.journeys.steps.context import Outcome, StepContext
from app.journeys.templates import TemplateRenderError


def run(ctx: StepContext, step: SendStep) -> Outcome:
    try:
        content = {key: tpl.render(ctx.variables) for key, tpl in step.content.items()}
    except TemplateRenderError as exc:
        # Recorded, not raised: ops must see why this person got nothing; the trip goes on.
        outbox.plan_failed(ctx.session, ctx.instance, step.path, step.channel, str(exc))
        return Outcome.NEXT
    outbox.plan(ctx.session, ctx.instance, step.path, step.channel, content)
    return Outcome.NEXT
