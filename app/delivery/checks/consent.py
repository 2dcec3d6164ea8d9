"""No message to a person who said no, bounced or never opted in (SMS) for that channel; a
transactional message is held to the channel's transactional rule (an unsubscribed person
still gets a receipt by e-mail, never after a hard bounce or an SMS STOP)."""

from __future__ import annotations

from app.delivery.checks.kind import is_transactional
from app.delivery.checks.verdicts import SendContext, Suppress, Verdict
from app.profiles.consent import suppression_reason


def check(context: SendContext) -> Verdict:
    transactional = is_transactional(context.session, context.delivery)
    reason = suppression_reason(
        context.delivery.channel, context.traits, transactional=transactional
    )
    return Suppress(reason) if reason else None
