"""Budgets: at most so much money spent on a channel per period (CARILLON_BUDGETS,
`sms=50EUR/day`), counted as the ROI report counts cost: billed units (an SMS's segments)
times the channel's price, for the messages that went out or may have (sent, sending,
unknown) since the period began (00:00 UTC; a week from Monday).

Exact under concurrency: the count runs inside the claim's transaction after taking a lock per
channel (`pg_advisory_xact_lock` on PostgreSQL; SQLite runs one writer at a time), held until
that transaction commits the row as `sending`; so of several workers claiming at once, each
counts the others' claims and the budget is never passed by a single message. A message that
would pass it waits for the next period (`CARILLON_ON_BUDGET=wait`) or is dropped (`skip`).
Transactional messages are never held by a budget; they count towards it. A channel without a
known price is not limited (nothing to count).
"""

from __future__ import annotations

import zlib
from datetime import datetime, timedelta

from sqlalchemy import func, select, text

from app.db import is_postgres
from app.delivery import models
from app.delivery.checks.kind import is_transactional
from app.delivery.checks.verdicts import Defer, SendContext, Suppress, Verdict
from app.delivery.models import Delivery
from app.settings import BUDGET_PERIODS, Budget
from channels import registry

# What went out or may have: it spent, or may have spent, its cost.
COUNTED = (models.SENT, models.SENDING, models.UNKNOWN)
# Keeps these advisory locks apart from the other users of pg_advisory_xact_lock (7401…).
_LOCK_BASE = 0x4275_0000


def period_start(budget: Budget, now: datetime) -> datetime:
    start = now.replace(minute=0, second=0, microsecond=0)
    if budget.period != "hour":
        start = start.replace(hour=0)
    if budget.period == "week":
        start -= timedelta(days=start.weekday())
    return start


def check(context: SendContext) -> Verdict:
    settings, delivery, session = context.settings, context.delivery, context.session
    budget = settings.budgets_by_channel().get(delivery.channel)
    if budget is None or is_transactional(session, delivery):
        return None
    price = settings.message_costs().get(delivery.channel, registry.spec(delivery.channel).cost)
    if not price:
        return None
    if is_postgres(session):
        key = _LOCK_BASE + zlib.crc32(delivery.channel.encode()) % 0xFFFF
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    start = period_start(budget, context.now)
    at = func.coalesce(Delivery.sent_at, Delivery.updated_at)
    spent_units = session.scalar(
        select(func.coalesce(func.sum(func.coalesce(Delivery.units, 1)), 0)).where(
            Delivery.channel == delivery.channel,
            Delivery.status.in_(COUNTED),
            Delivery.id != delivery.id,
            at >= start,
        )
    )
    spent = round(float(spent_units or 0) * price, 9)
    cost = round((delivery.units or 1) * price, 9)
    if spent + cost <= budget.amount + 1e-9:
        return None
    reason = (
        f"budget {delivery.channel} {budget}: {spent:g} {budget.currency} spent, this message "
        f"costs {cost:g}"
    )
    if settings.on_budget == "skip":
        return Suppress(reason)
    return Defer(start + BUDGET_PERIODS[budget.period], reason)
