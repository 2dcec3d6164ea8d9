"""`send:` — render the message now and write it to the outbox in the step's transaction."""

from __future__ import annotations

import logging

from app import unsubscribe
from app.delivery import outbox
from app.journeys.definition import SendStep
from app.journeys.steps.context import Outcome, StepContext
from app.journeys.templates import TemplateRenderError, render_variant

log = logging.getLogger(__name__)

HOLDOUT = "holdout"


def run(ctx: StepContext, step: SendStep) -> Outcome:
    if ctx.instance.arm == HOLDOUT:
        # The control group: nothing is sent, the trip goes on so its conversions count.
        log.info("instance %s step %s: holdout, nothing sent", ctx.instance.id, step.path)
        return Outcome.NEXT
    locale, variant = step.localized().pick((ctx.profile.get("traits") or {}).get("locale"))
    try:
        # The delivery has no id yet: the adapter swaps the placeholder for the signed link.
        variables = {**ctx.variables, "unsubscribe_url": unsubscribe.PLACEHOLDER}
        content = render_variant(step.channel, variant, variables)
    except TemplateRenderError as exc:
        # Recorded, not raised: ops must see why this person got nothing; the trip goes on.
        reason = f"locale {locale}: {exc}" if locale else str(exc)
        outbox.plan_failed(ctx.session, ctx.instance, step.path, step.channel, reason)
        return Outcome.NEXT
    outbox.plan(ctx.session, ctx.instance, step.path, step.channel, content)
    return Outcome.NEXT
