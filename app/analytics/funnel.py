"""A journey's funnel: of the trips that entered, how many were sent a message, had one
delivered, had one clicked, and reached the goal; per journey, then per arm of its split.

Counted in trips (a person on a journey), not messages: a trip sent three e-mails is one person
reached, so each stage reads as a share of the people who entered. A trip's arm is the one the
split put it in; trips that have not reached the split yet count in the journey's row only.
Delivered and clicked come from provider webhooks, at the kinds each channel declares
(`ChannelSpec.feedback_kinds`): None, not 0, while no webhook has reported on the journey's
messages on a channel that has the stage (Twilio never reports a click). Every version of a
journey counts, like the journeys panel.

`carillon report journeys` prints these beside the cost and ROI of the same journeys and arms
(`JourneyRow`); the dashboard draws them (app/ops/charts.py).
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from dataclasses import asdict, dataclass, fields
from typing import Any

from sqlalchemy import and_, case, distinct, false, func, or_, select
from sqlalchemy.orm import Session

from app.analytics import roi
from app.delivery import models
from app.delivery.models import Delivery, DeliveryEvent
from app.journeys import catalog
from app.journeys.models import JourneyInstance
from app.settings import Settings
from app.webhooks.sources import provider_sources
from channels import registry

ALL_ARMS = roi.ALL_ARMS
# The webhook stages a funnel shows, by their name in `ChannelSpec.feedback_kinds`.
WEBHOOK_STAGES = ("delivered", "clicked")


@dataclass(frozen=True)
class Funnel:
    journey: str
    name: str  # the journey's name when it is loaded, else its id
    arm: str  # ALL_ARMS, or one arm of the split
    entered: int
    reached: int  # trips sent at least one message (a dry run reaches nobody)
    dry_run: int  # trips with a message only rendered: the channel has no provider keys
    delivered: int | None
    clicked: int | None
    converted: int  # trips that reached the journey's goal


def _stage(stage: str) -> Any:
    """The condition on a delivery's history that puts its trip in `stage`."""
    kinds = [
        and_(Delivery.channel == name, DeliveryEvent.kind == spec.feedback_kinds[stage])
        for name, spec in registry.specs().items()
        if stage in spec.feedback_kinds
    ]
    return or_(*kinds) if kinds else false()


def _trips(condition: Any) -> Any:
    return func.count(distinct(case((condition, Delivery.instance_id))))


def journeys(session: Session) -> list[Funnel]:
    """Every loaded journey and every journey with trips, by id; each journey's row, then its
    arms' rows in name order."""
    names = {journey.id: journey.name for _version, journey in catalog.current_journeys(session)}
    counts: dict[tuple[str, str | None], dict[str, int]] = defaultdict(dict)
    for journey, arm, entered, converted in session.execute(
        select(
            JourneyInstance.journey_id,
            JourneyInstance.arm,
            func.count(),
            func.count(JourneyInstance.converted_at),
        ).group_by(JourneyInstance.journey_id, JourneyInstance.arm)
    ):
        counts[(journey, arm)] |= {"entered": entered, "converted": converted}
    trip = Delivery.instance_id == JourneyInstance.id
    for journey, arm, reached, dry_run in session.execute(
        select(
            JourneyInstance.journey_id,
            JourneyInstance.arm,
            _trips(Delivery.status == models.SENT),
            _trips(Delivery.status == models.DRY_RUN),
        )
        .join(JourneyInstance, trip)
        .group_by(JourneyInstance.journey_id, JourneyInstance.arm)
    ):
        counts[(journey, arm)] |= {"reached": reached, "dry_run": dry_run}
    webhooks = (
        select(JourneyInstance.journey_id, JourneyInstance.arm, Delivery.channel)
        .join(JourneyInstance, trip)
        .join(DeliveryEvent, DeliveryEvent.delivery_id == Delivery.id)
        .where(DeliveryEvent.source.in_(provider_sources()))
    )
    for journey, arm, *reported in session.execute(
        webhooks.with_only_columns(
            JourneyInstance.journey_id,
            JourneyInstance.arm,
            *(_trips(_stage(stage)) for stage in WEBHOOK_STAGES),
        ).group_by(JourneyInstance.journey_id, JourneyInstance.arm)
    ):
        counts[(journey, arm)] |= dict(zip(WEBHOOK_STAGES, reported, strict=True))
    # The stages a journey's webhooks can tell: those of the channels that reported on it.
    known: dict[str, set[str]] = defaultdict(set)
    specs = registry.specs()
    for journey, channel in session.execute(
        webhooks.with_only_columns(JourneyInstance.journey_id, Delivery.channel).distinct()
    ):
        known[journey] |= set(specs[channel].feedback_kinds) if channel in specs else set()

    def row(journey: str, arm: str, found: list[dict[str, int]]) -> Funnel:
        def total(stage: str) -> int:
            return sum(c.get(stage, 0) for c in found)

        def told(stage: str) -> int | None:
            return total(stage) if stage in known[journey] else None

        return Funnel(
            journey,
            names.get(journey, journey),
            arm,
            entered=total("entered"),
            reached=total("reached"),
            dry_run=total("dry_run"),
            delivered=told("delivered"),
            clicked=told("clicked"),
            converted=total("converted"),
        )

    result = []
    for journey in sorted(set(names) | {key[0] for key in counts}):
        mine = {arm: found for (j, arm), found in counts.items() if j == journey}
        result.append(row(journey, ALL_ARMS, list(mine.values())))
        result += [row(journey, arm, [mine[arm]]) for arm in sorted(a for a in mine if a)]
    return result


# --- `carillon report journeys`: the funnel beside the money ---------------------------------


@dataclass(frozen=True)
class JourneyRow:
    """A journey's (or arm's) funnel in trips, then its messages, cost and ROI (app/analytics/
    roi.py). The funnel figures are None for sends outside any journey (the API's)."""

    journey: str
    arm: str
    entered: int | None
    reached: int | None
    dry_run: int | None
    delivered: int | None
    clicked: int | None
    converted: int | None
    sent: int  # messages really sent
    units: int
    cost: float | None
    revenue: float
    currency: str
    roi: float | None


FUNNEL_FIELDS = ("entered", "reached", "dry_run", "delivered", "clicked", "converted")


def report(session: Session, settings: Settings) -> list[JourneyRow]:
    """Raises roi.CurrencyMismatch, as the ROI figures do."""
    funnels = {(f.journey, f.arm): f for f in journeys(session)}
    money = {(r.journey or "", r.arm or ALL_ARMS): r for r in roi.journeys(session, settings)}
    rows = []
    for key in sorted(funnels.keys() | money.keys(), key=lambda k: (k[0], k[1] != ALL_ARMS, k[1])):
        funnel, figures = funnels.get(key), money.get(key)
        rows.append(
            JourneyRow(
                journey=key[0],
                arm=key[1],
                entered=funnel.entered if funnel else None,
                reached=funnel.reached if funnel else None,
                dry_run=funnel.dry_run if funnel else None,
                delivered=funnel.delivered if funnel else None,
                clicked=funnel.clicked if funnel else None,
                converted=funnel.converted if funnel else None,
                sent=figures.sent if figures else 0,
                units=figures.units if figures else 0,
                cost=figures.cost if figures else 0.0,
                revenue=figures.revenue if figures else 0.0,
                currency=figures.currency if figures else settings.cost_currency,
                roi=figures.roi if figures else None,
            )
        )
    return rows


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:,}"


def render(rows: list[JourneyRow], fmt: str) -> str:
    if fmt == "json":
        return json.dumps([asdict(row) for row in rows], indent=2)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        names = [f.name for f in fields(JourneyRow)]
        writer.writerow(names)
        for row in rows:
            values = asdict(row)
            writer.writerow(
                [roi.number(v) if isinstance(v, float) else "" if v is None else v
                 for v in (values[name] for name in names)]
            )  # fmt: skip
        return out.getvalue()
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(roi.FORMATS)}")
    if not rows:
        return "No journey is loaded and nothing was sent yet."
    header = ("JOURNEY", "ARM", *(n.upper().replace("_", " ") for n in FUNNEL_FIELDS),
              *roi.MONEY_HEADER)  # fmt: skip
    cells = [header] + [
        (
            row.journey,
            row.arm,
            *(_cell(getattr(row, name)) for name in FUNNEL_FIELDS),
            *roi.money_cells(row),
        )
        for row in rows
    ]
    lines = roi.aligned(cells, 2)
    lines += [
        "ENTERED to CONVERTED count trips (people on the journey); REACHED = sent at least one "
        "message, DRY RUN = a message only rendered (no provider keys); DELIVERED and CLICKED "
        "come from provider webhooks, '-' until one reports.",
        "SENT counts messages; ROI = (revenue - cost) / cost; n/a without a known price or "
        "with no cost.",
    ]
    return "\n".join(lines)
