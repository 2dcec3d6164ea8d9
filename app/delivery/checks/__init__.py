"""Send-time policy: the checks a claimed delivery passes just before the provider call.

DESIGN.md asks for consent, frequency caps and quiet hours to be checked when the message is
about to go out, not only when it was planned: people unsubscribe, move timezone or receive
another journey's message in between. Each check is one small module with the same shape: it
reads the delivery and the person as of now and answers `None` (go on), `Suppress` (never send,
never retry), `Defer` (pending again, due at `until`) or, a budget's fallback, `Reroute`
(pending again on another channel). They run in `CHECKS` order inside the claim's
transaction, so a check that counts rows sees those other workers have claimed.

Provider rate limits are not a check: they decide nothing about the person, they only make the
worker wait for a token before the call.
"""

from __future__ import annotations

from app.delivery.checks import budgets, caps, consent, quiet_hours
from app.delivery.checks.verdicts import Check, Defer, Reroute, SendContext, Suppress, Verdict

# In order: consent first, so nobody who said no is ever merely deferred. Quiet hours before
# caps: a message that cannot go now takes no lock and no slot, and the cap is counted last,
# just before the provider call, by messages that really go now (a higher-priority message
# held by quiet hours never reserves a slot it cannot use yet). The budget last, for the same
# reason: only a message that goes now spends.
CHECKS: list[Check] = [consent.check, quiet_hours.check, caps.check, budgets.check]


def decide(context: SendContext) -> Verdict:
    """The first check that objects wins. Taking someone out of an audience is no message to
    them: no consent, quiet hours or cap may hold it back."""
    if context.delivery.content.get("operation") == "remove":
        return None
    for check in CHECKS:
        verdict = check(context)
        if verdict is not None:
            return verdict
    return None


__all__ = ["CHECKS", "Check", "Defer", "Reroute", "SendContext", "Suppress", "Verdict", "decide"]
