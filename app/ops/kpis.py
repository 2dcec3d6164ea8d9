"""Dashboard figures: people per journey step, and per channel results, cost and conversions.

Per step, from the rows the runtime writes: an instance's `cursor` is the step it is at (or
ended at), so for top-level steps "entered" = instances whose cursor is at or after the step
(trips only move forward). Inside a branch or split arm the cursor leaves the arm, so a nested
step's "entered" is a lower bound, raised to what its timers and deliveries prove.

Per channel, from deliveries. Delivered, opened and clicked are deliveries with that provider
webhook in their history (SendGrid's delivered/open/click, Twilio's delivered); unknown, not
zero, for a channel no webhook has reported on yet. Conversions count trips
with status `converted` (goals, issue #3) that received a message on the channel. Cost is
the unit's price (CARILLON_COST_PER_MESSAGE, or CARILLON_COST_PER_THOUSAND / 1000) times the
messages really sent (a dry run costs nothing); a channel costed by its ad spend costs what
the platform reported spent (app/analytics/spend.py), unknown while an ad set was never read
or while the spend is in another currency than CARILLON_COST_CURRENCY.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from app.analytics import spend
from app.delivery import models as delivery
from app.delivery.models import Delivery, DeliveryEvent
from app.journeys import catalog
from app.journeys.definition import Journey, SendStep, Step, child_lists
from app.journeys.models import JourneyInstance, Timer
from app.settings import get_settings
from app.webhooks.sources import provider_sources
from channels import registry

CONVERTED = "converted"
ENGAGEMENT_NOTE = (
    "delivered, open and click come from provider webhooks (SendGrid Event Webhook, Twilio "
    "status callbacks); n/a until a channel's first webhook arrives"
)


@dataclass
class StepCounts:
    path: str
    kind: str
    entered: int = 0
    waiting: int = 0
    sent: int = 0
    dry_run: int = 0
    exited: int = 0
    completed: int = 0
    converted: int = 0
    # Goal revenue credited to this step's message (last touch), per currency.
    revenue: dict[str, float] = field(default_factory=dict)


@dataclass
class JourneyCounts:
    journey_id: str
    name: str
    steps: list[StepCounts]
    # Every conversion's revenue, credited to a message or not (a holdout's), per currency.
    revenue: dict[str, float] = field(default_factory=dict)


def _revenue(
    session: Session, *keys: Any, credited: bool = True
) -> dict[tuple[Any, ...], dict[str, float]]:
    """Goal revenue per currency, summed by `keys`: only what was credited to a message (keys
    of the credited delivery), or every conversion's (keys of the trip)."""
    stmt = select(*keys, JourneyInstance.currency, func.sum(JourneyInstance.revenue))
    if credited:
        stmt = stmt.join(Delivery, JourneyInstance.attributed_delivery_id == Delivery.id)
    stmt = stmt.where(JourneyInstance.revenue.is_not(None))
    found: dict[tuple[Any, ...], dict[str, float]] = defaultdict(dict)
    for *key, currency, total in session.execute(stmt.group_by(*keys, JourneyInstance.currency)):
        found[tuple(key)][currency] = float(total)
    return found


def _kind(step: Step) -> str:
    kind = type(step).__name__.removesuffix("Step")
    label = "".join(f"_{c.lower()}" if c.isupper() else c for c in kind).lstrip("_")
    return f"send {step.channel}" if isinstance(step, SendStep) else label


def _walk(steps: tuple[Step, ...]) -> list[Step]:
    flat: list[Step] = []
    for step in steps:
        flat.append(step)
        for arm in child_lists(step):
            flat += _walk(arm)
    return flat


def _at_or_after(cursor: str, path: str) -> bool:
    """True when a trip at `cursor` has passed through the step at `path` (same arm)."""
    want = path.split(".")
    have = cursor.split(".")
    depth = len(want) - 1
    if len(have) <= depth or have[:depth] != want[:depth]:
        return False
    try:
        return int(have[depth]) >= int(want[depth])
    except ValueError:
        return have[depth] == want[depth]


def journeys(session: Session) -> list[JourneyCounts]:
    current: list[tuple[int, Journey]] = catalog.current_journeys(session)
    by_cursor: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
    for journey_id, cursor, status, n in session.execute(
        select(
            JourneyInstance.journey_id,
            JourneyInstance.cursor,
            JourneyInstance.status,
            func.count(),
        ).group_by(JourneyInstance.journey_id, JourneyInstance.cursor, JourneyInstance.status)
    ):
        by_cursor[journey_id].append((cursor, status, n))
    sends: dict[tuple[str, str, str], int] = {
        (j, p, s): n
        for j, p, s, n in session.execute(
            select(Delivery.journey_id, Delivery.step_path, Delivery.status, func.count()).group_by(
                Delivery.journey_id, Delivery.step_path, Delivery.status
            )
        )
    }
    waits: dict[tuple[str, str], int] = {
        (j, p): n
        for j, p, n in session.execute(
            select(JourneyInstance.journey_id, Timer.step_path, func.count(distinct(Timer.id)))
            .join(JourneyInstance, Timer.instance_id == JourneyInstance.id)
            .group_by(JourneyInstance.journey_id, Timer.step_path)
        )
    }
    per_step = _revenue(session, Delivery.journey_id, Delivery.step_path)
    per_journey = _revenue(session, JourneyInstance.journey_id, credited=False)
    result = []
    for _version, journey in current:
        rows = []
        for step in _walk(journey.steps):
            counts = StepCounts(step.path, _kind(step))
            for cursor, status, n in by_cursor.get(journey.id, []):
                if _at_or_after(cursor, step.path):
                    counts.entered += n
                if cursor != step.path:
                    continue
                if status == "active":
                    counts.waiting += n
                elif status == "exited":
                    counts.exited += n
                elif status == "completed":
                    counts.completed += n
                elif status == CONVERTED:
                    counts.converted += n
            planned = sum(
                n for (j, p, _s), n in sends.items() if j == journey.id and p == step.path
            )
            counts.sent = sends.get((journey.id, step.path, delivery.SENT), 0)
            counts.dry_run = sends.get((journey.id, step.path, delivery.DRY_RUN), 0)
            counts.entered = max(counts.entered, planned, waits.get((journey.id, step.path), 0))
            counts.revenue = per_step.get((journey.id, step.path), {})
            rows.append(counts)
        result.append(
            JourneyCounts(journey.id, journey.name, rows, per_journey.get((journey.id,), {}))
        )
    return result


@dataclass
class Engagement:
    delivered: int | None = None
    opened: int | None = None
    clicked: int | None = None


def engagement(session: Session) -> dict[str, Engagement]:
    """Delivered / opened / clicked per channel: distinct deliveries with that webhook."""
    rows = session.execute(
        select(Delivery.channel, DeliveryEvent.kind, func.count(distinct(Delivery.id)))
        .join(DeliveryEvent, DeliveryEvent.delivery_id == Delivery.id)
        .where(DeliveryEvent.source.in_(provider_sources()))
        .group_by(Delivery.channel, DeliveryEvent.kind)
    ).all()
    counts = {(channel, kind): n for channel, kind, n in rows}
    reported = {channel for channel, _kind, _n in rows}
    result = {}
    for channel, spec in registry.specs().items():
        # The history kinds that count, as the channel declares them; others cannot report.
        figures = {
            name: counts.get((channel, kind), 0) for name, kind in spec.feedback_kinds.items()
        }
        result[channel] = Engagement(**figures) if channel in reported else Engagement()
    return result


@dataclass
class ChannelKpis:
    channel: str
    sent: int
    dry_run: int
    failed: int  # refused by the provider, or out of retries (dead letters)
    cancelled: int
    # Refused at send time: no consent, or a frequency cap with `on_cap: drop`.
    suppressed: int
    pending: int
    delivered: int | None
    opened: int | None
    clicked: int | None
    delivery_rate: float | None
    open_rate: float | None
    click_rate: float | None
    conversions: int
    cost_per_message: float | None
    cost: float | None
    cost_per_conversion: float | None
    revenue: dict[str, float]  # goal revenue credited to the channel's messages, per currency


def _rate(part: int | None, whole: int) -> float | None:
    return None if part is None or whole == 0 else part / whole


def channels(session: Session) -> list[ChannelKpis]:
    counts: dict[tuple[str, str], int] = {
        (c, s): n
        for c, s, n in session.execute(
            select(Delivery.channel, Delivery.status, func.count()).group_by(
                Delivery.channel, Delivery.status
            )
        )
    }
    conversions: dict[str, int] = {
        c: n
        for c, n in session.execute(
            select(Delivery.channel, func.count(distinct(JourneyInstance.id)))
            .join(JourneyInstance, Delivery.instance_id == JourneyInstance.id)
            .where(
                JourneyInstance.status == CONVERTED,
                Delivery.status == delivery.SENT,  # a dry run reached nobody
            )
            .group_by(Delivery.channel)
        )
    }
    settings = get_settings()
    costs = settings.message_costs()
    spent = {
        channel: spend.channel_spend(session, channel, source).total(settings.cost_currency)
        for channel, source in spend.sources().items()
    }
    engaged = engagement(session)
    revenue = _revenue(session, Delivery.channel)
    result = []
    for channel in registry.names():
        sent = counts.get((channel, delivery.SENT), 0)
        unit = costs.get(channel, registry.spec(channel).cost)
        cost = None if unit is None else unit * sent
        if channel in spent:  # its spend, whatever it reached; per message, on average
            cost = spent[channel]
            unit = None if cost is None or not sent else cost / sent
        converted = conversions.get(channel, 0)
        e = engaged[channel]
        result.append(
            ChannelKpis(
                channel=channel,
                sent=sent,
                dry_run=counts.get((channel, delivery.DRY_RUN), 0),
                failed=counts.get((channel, delivery.FAILED), 0)
                + counts.get((channel, delivery.DEAD), 0),
                cancelled=counts.get((channel, delivery.CANCELLED), 0),
                suppressed=counts.get((channel, delivery.SUPPRESSED), 0),
                pending=counts.get((channel, delivery.PENDING), 0)
                + counts.get((channel, delivery.SENDING), 0),
                delivered=e.delivered,
                opened=e.opened,
                clicked=e.clicked,
                delivery_rate=_rate(e.delivered, sent),
                open_rate=_rate(e.opened, sent),
                click_rate=_rate(e.clicked, sent),
                conversions=converted,
                cost_per_message=unit,
                cost=cost,
                cost_per_conversion=None if cost is None or not converted else cost / converted,
                revenue=revenue.get((channel,), {}),
            )
        )
    return result


def as_dicts(items: list[Any]) -> list[dict[str, Any]]:
    return [asdict(item) for item in items]
