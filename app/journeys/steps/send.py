"""`send:` — render the message now and write it to the outbox in the step's transaction."""

from __future__ import annotations

import logging

from app import unsubscribe
from app.delivery import outbox
from app.journeys.definition import SendStep
from app.journeys.steps import channel_choice
from app.journeys.steps.context import Outcome, StepContext
from app.journeys.templates import TemplateRenderError, Versions, render_variant

log = logging.getLogger(__name__)

HOLDOUT = "holdout"


def run(ctx: StepContext, step: SendStep) -> Outcome:
    if ctx.instance.arm == HOLDOUT:
        # The control group: nothing is sent, the trip goes on so its conversions count.
        log.info("instance %s step %s: holdout, nothing sent", ctx.instance.id, step.path)
        return Outcome.NEXT
    if not step.preferred:
        _plan(ctx, step, step.channel, step.localized())
        return Outcome.NEXT
    variants = ctx.journey.messages[str(step.message)]
    choice = channel_choice.choose(
        ctx.session, ctx.journey, ctx.profile, str(step.message), variants
    )
    if choice.channel is None:
        # Recorded, not raised: ops see why this person got nothing; the trip goes on.
        outbox.plan_skipped(ctx.session, ctx.instance, step.path, choice.first, choice.note)
    else:
        _plan(ctx, step, choice.channel, variants[choice.channel], choice.note)
    return Outcome.NEXT


def _plan(
    ctx: StepContext, step: SendStep, channel: str, versions: Versions, chosen: str | None = None
) -> None:
    locale, variant = versions.pick((ctx.profile.get("traits") or {}).get("locale"))
    try:
        # The delivery has no id yet: the adapter swaps the placeholder for the signed link.
        variables = {**ctx.variables, "unsubscribe_url": unsubscribe.PLACEHOLDER}
        content = render_variant(channel, variant, variables)
    except TemplateRenderError as exc:
        # Recorded, not raised: ops must see why this person got nothing; the trip goes on.
        reason = f"locale {locale}: {exc}" if locale else str(exc)
        outbox.plan_failed(ctx.session, ctx.instance, step.path, channel, reason, chosen)
        return
    outbox.plan(ctx.session, ctx.instance, step.path, channel, content, chosen)
