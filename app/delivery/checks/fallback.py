"""`on_budget: {fallback: <channel>}`: a message a budget holds goes out on another channel
instead, when the person may get it there (consent, as the consent check judges it) and the
message the send step names (`send: {channel: sms, message: welcome}`) has a variant for it.
The variant is rendered now, as the send step renders (the trip's trigger event, the person as
of now, their locale). Otherwise, or once it is already on that channel, it waits for the next
period, and the reason says why no fallback."""

from __future__ import annotations

from datetime import datetime

from app import unsubscribe
from app.delivery.checks.verdicts import Defer, Reroute, SendContext
from app.events.models import Event
from app.journeys.definition import Journey, SendStep
from app.journeys.models import JourneyInstance
from app.journeys.templates import TemplateRenderError, render_variant
from app.profiles.consent import suppression_reason
from app.profiles.models import Profile
from app.profiles.view import view


def reroute(
    context: SendContext, journey: Journey, channel: str, reason: str, next_period: datetime
) -> Reroute | Defer:
    delivery, session = context.delivery, context.session
    why_not = None
    step = journey.step(delivery.step_path)
    versions = (
        journey.messages.get(step.message, {}).get(channel)
        if isinstance(step, SendStep) and step.message
        else None
    )
    if delivery.channel == channel:
        why_not = f"already on {channel}"
    elif versions is None or delivery.instance_id is None:
        why_not = f"the message has no {channel} variant"
    elif refused := suppression_reason(channel, context.traits, transactional=False):
        why_not = refused
    else:
        person = view(session, session.get_one(Profile, delivery.profile_id))
        instance = session.get_one(JourneyInstance, delivery.instance_id)
        event = session.get_one(Event, instance.trigger_event_id).payload
        _, variant = versions.pick(context.traits.get("locale"))
        variables = {"event": event, "profile": person, "unsubscribe_url": unsubscribe.PLACEHOLDER}
        try:
            return Reroute(channel, render_variant(channel, variant, variables), reason)
        except TemplateRenderError as exc:
            why_not = f"its {channel} variant does not render: {exc}"
    return Defer(next_period, f"{reason}; no fallback to {channel}: {why_not}")
