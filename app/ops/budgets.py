"""Spend against budget as of now, per channel budget (CARILLON_BUDGETS) and per journey
budget (its `budget:`), counted exactly as the send-time check counts it, so what ops read is
what holds the next message back: `/ops/budgets`, the dashboard, `/metrics`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.orm import Session

from app import clock
from app.delivery.checks.budgets import period_start, spent, spent_units
from app.delivery.models import Delivery
from app.journeys import catalog
from app.settings import BUDGET_PERIODS, Budget, Settings, get_settings


@dataclass(frozen=True)
class Standing:
    scope: Literal["channel", "journey"]
    name: str  # the channel, or the journey's id
    budget: str  # as written: 50EUR/day
    amount: float
    currency: str
    period: str
    spent: float  # this period, what went out or may have
    left: float
    period_start: str
    resets_at: str
    # What a message it holds does: skip, wait, fallback:<channel>; a journey's messages on
    # CARILLON_ON_BUDGET's per-channel terms are shown as that setting says (sms=skip,email=wait).
    on_budget: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _standing(
    scope: Literal["channel", "journey"],
    name: str,
    budget: Budget,
    units: dict[str, float],
    start: datetime,
    on_budget: str,
    settings: Settings,
) -> Standing:
    so_far = spent(settings, units)
    return Standing(
        scope,
        name,
        str(budget),
        budget.amount,
        budget.currency,
        budget.period,
        so_far,
        round(max(0.0, budget.amount - so_far), 9),
        start.isoformat(),
        (start + BUDGET_PERIODS[budget.period]).isoformat(),
        on_budget,
    )


def standings(session: Session) -> list[Standing]:
    settings, now = get_settings(), clock.now()
    found = []
    for channel, budget in sorted(settings.budgets_by_channel().items()):
        start = period_start(budget, now)
        units = spent_units(session, start, Delivery.channel == channel)
        found.append(
            _standing(
                "channel", channel, budget, units, start, settings.on_budget_for(channel), settings
            )
        )
    for _, journey in sorted(catalog.current_journeys(session), key=lambda j: j[1].id):
        policy = journey.budget
        if policy is None or policy.limit is None:
            continue
        start = period_start(policy.limit, now)
        units = spent_units(session, start, Delivery.journey_id == journey.id)
        on_budget: str = policy.on_budget or settings.on_budget
        if on_budget == "fallback":
            on_budget = f"fallback:{policy.fallback}"
        found.append(
            _standing("journey", journey.id, policy.limit, units, start, on_budget, settings)
        )
    return found
