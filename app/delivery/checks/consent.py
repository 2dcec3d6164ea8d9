"""No message to a person who said no, bounced or never opted in (SMS) for that channel."""

from __future__ import annotations

from app.delivery.checks.verdicts import SendContext, Suppress, Verdict
from app.profiles.consent import suppression_reason


def check(context: SendContext) -> Verdict:
    reason = suppression_reason(context.delivery.channel, context.traits)
    return Suppress(reason) if reason else None
