"""Budgets: at most so much money spent per period on a channel (CARILLON_BUDGETS,
`sms=50EUR/day`) and on a journey's messages, every channel together (the journey's
`budget: {amount: 20EUR, per: day}`), counted as the ROI report counts cost: billed units (an
SMS's segments) times the channel's price, for the messages that went out or may have (sent,
sending, unknown) since the period began (00:00 UTC; a week from Monday).

Exact under concurrency: the count runs inside the claim's transaction after taking a lock per
channel, then per journey (`pg_advisory_xact_lock` on PostgreSQL, always in that order; SQLite
runs one writer at a time), held until that transaction commits the row as `sending`; so of
several workers claiming at once, each counts the others' claims and no budget is ever passed
by a single message. A message that would pass one does what its journey's `on_budget` says,
else what CARILLON_ON_BUDGET says for its channel: waits for the next period (`wait`), is
dropped (`skip`) or goes out on another channel (`fallback`, `app.delivery.checks.fallback`).
Transactional messages are never held by a budget; they count towards it. A channel without a
known price spends nothing.
"""

from __future__ import annotations

import zlib
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, select, text
from sqlalchemy.orm import Session

from app.db import is_postgres
from app.delivery import models
from app.delivery.checks import fallback
from app.delivery.checks.kind import is_transactional
from app.delivery.checks.verdicts import Defer, SendContext, Suppress, Verdict
from app.delivery.models import Delivery
from app.journeys import catalog
from app.settings import BUDGET_PERIODS, Budget, Settings
from channels import registry

# What went out or may have: it spent, or may have spent, its cost.
COUNTED = (models.SENT, models.SENDING, models.UNKNOWN)
# Keeps these advisory locks apart from the other users of pg_advisory_xact_lock (7401…).
_LOCK_BASE = 0x4275_0000
_JOURNEY_LOCK_BASE = 0x4276_0000


def period_start(budget: Budget, now: datetime) -> datetime:
    start = now.replace(minute=0, second=0, microsecond=0)
    if budget.period != "hour":
        start = start.replace(hour=0)
    if budget.period == "week":
        start -= timedelta(days=start.weekday())
    return start


def price(settings: Settings, channel: str) -> float:
    """What one billed unit of the channel costs (0: unknown, it spends nothing)."""
    return settings.message_costs().get(channel, registry.spec(channel).cost) or 0.0


def _lock(session: Session, base: int, name: str) -> None:
    if is_postgres(session):
        key = base + zlib.crc32(name.encode()) % 0xFFFF
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def spent_units(session: Session, start: datetime, *where: ColumnElement[bool]) -> dict[str, float]:
    """Billed units per channel of the counted messages since `start` matching `where`."""
    at = func.coalesce(Delivery.sent_at, Delivery.updated_at)
    rows = session.execute(
        select(Delivery.channel, func.coalesce(func.sum(func.coalesce(Delivery.units, 1)), 0))
        .where(Delivery.status.in_(COUNTED), at >= start, *where)
        .group_by(Delivery.channel)
    )
    return {channel: float(units or 0) for channel, units in rows}


def spent(settings: Settings, units: dict[str, float]) -> float:
    return round(sum(n * price(settings, channel) for channel, n in units.items()), 9)


def _over(
    context: SendContext,
    budget: Budget,
    cost: float,
    lock: tuple[int, str],
    mine: ColumnElement[bool],
) -> str | None:
    """What this budget's messages (`mine`) spent in its period, when this one's `cost` would
    take it over; None when it fits. Under the budget's lock (`lock`: its base and key), so
    workers racing for the last of it are counted one after the other."""
    session, delivery = context.session, context.delivery
    _lock(session, *lock)
    start = period_start(budget, context.now)
    units = spent_units(session, start, mine, Delivery.id != delivery.id)
    so_far = spent(context.settings, units)
    if so_far + cost > budget.amount + 1e-9:
        return f"{so_far:g} {budget.currency}"
    return None


def check(context: SendContext) -> Verdict:
    settings, delivery, session = context.settings, context.delivery, context.session
    cost = round((delivery.units or 1) * price(settings, delivery.channel), 9)
    if not cost or is_transactional(session, delivery):
        return None
    journey = (
        catalog.journey_of_instance(session, delivery.instance_id)
        if delivery.instance_id is not None
        else None
    )
    policy = journey.budget if journey is not None else None
    held: list[tuple[str, Budget]] = []
    if (budget := settings.budgets_by_channel().get(delivery.channel)) is not None:
        mine = Delivery.channel == delivery.channel
        so_far = _over(context, budget, cost, (_LOCK_BASE, delivery.channel), mine)
        if so_far is not None:
            held.append((f"budget {delivery.channel} {budget}: {so_far}", budget))
    if not held and policy is not None and (budget := policy.limit) is not None:
        mine = Delivery.journey_id == delivery.journey_id
        so_far = _over(context, budget, cost, (_JOURNEY_LOCK_BASE, delivery.journey_id), mine)
        if so_far is not None:
            held.append((f"budget of journey {delivery.journey_id} {budget}: {so_far}", budget))
    if not held:
        return None
    what, budget = held[0]
    reason = f"{what} spent, this message costs {cost:g}"
    on_budget = (policy.on_budget if policy else None) or settings.on_budget_for(delivery.channel)
    if on_budget == "skip":
        return Suppress(reason)
    next_period = period_start(budget, context.now) + BUDGET_PERIODS[budget.period]
    if on_budget == "fallback" and journey is not None and policy and policy.fallback:
        return fallback.reroute(context, journey, policy.fallback, reason, next_period)
    return Defer(next_period, reason)
