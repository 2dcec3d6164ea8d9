"""Cost and return per channel, journey and arm: what the messages cost, the goal revenue
credited to them, and ROI = (revenue − cost) / cost.

Cost counts what providers bill: the messages really sent (a dry run reaches nobody and costs
nothing), each as many units as its channel bills it (`ChannelSpec.units`: an SMS's segments,
measured on the rendered text when it was planned), times the unit's price
(CARILLON_COST_PER_MESSAGE or CARILLON_COST_PER_THOUSAND / 1000, else the channel's spec), in
CARILLON_COST_CURRENCY. Revenue is the
goal value credited last-touch to a message (app/analytics/attribution.py). Both must be in one
currency: revenue in another is refused (`CurrencyMismatch`) rather than added up as if it were
the same money. A channel whose price is unknown has no cost, and so no ROI.

A channel costed by its ad spend (app/analytics/spend.py: the ad sets configured for its
audiences) costs what the platform reported spent, in the ad account's currency, which must be
CARILLON_COST_CURRENCY too. A journey's arm bears a share of each audience's spend in
proportion to the people it added to that audience, among all the people Carillon added to it.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.analytics import spend
from app.analytics.report import amount, change
from app.delivery import models
from app.delivery.models import Delivery
from app.journeys.models import JourneyInstance
from app.settings import Settings
from channels import registry

FORMATS = ("table", "csv", "json")
# The rows of every arm together, in the journeys report.
ALL_ARMS = "(all)"


class CurrencyMismatch(ValueError):
    """Goal revenue in a currency other than the one costs are counted in."""


@dataclass(frozen=True)
class Figures:
    """One row: `channel` for the channels report, `journey` and `arm` for the journeys one."""

    channel: str | None
    journey: str | None
    arm: str | None
    sent: int
    units: int  # billed units (SMS segments; one per message elsewhere)
    cost: float | None  # None: a channel among them has no known price
    revenue: float
    currency: str
    roi: float | None  # None without a cost, or with a cost of 0


# A row's share of each spend-costed channel's spend; None: unknown (an ad set not read yet).
Spent = dict[str, float | None]
# By journey and arm.
Shares = dict[tuple[str, str | None], Spent]


def _price(settings: Settings, channel: str) -> float | None:
    return settings.message_costs().get(channel, registry.spec(channel).cost)


def _roi(revenue: float, cost: float | None) -> float | None:
    return None if not cost else (revenue - cost) / cost


def _sent(session: Session, *keys: Any) -> dict[tuple[Any, ...], dict[str, tuple[int, int]]]:
    """Messages sent and units billed, per channel, by `keys`."""
    rows = session.execute(
        select(*keys, Delivery.channel, func.count(), func.sum(func.coalesce(Delivery.units, 1)))
        .where(Delivery.status == models.SENT)
        .group_by(*keys, Delivery.channel)
    )
    found: dict[tuple[Any, ...], dict[str, tuple[int, int]]] = defaultdict(dict)
    for *key, channel, count, units in rows:
        found[tuple(key)][channel] = (int(count), int(units or 0))
    return found


def _revenue(session: Session, *keys: Any) -> dict[tuple[Any, ...], dict[str, float]]:
    """Goal revenue credited to a message, per currency, by `keys` of that message."""
    rows = session.execute(
        select(*keys, JourneyInstance.currency, func.sum(JourneyInstance.revenue))
        .join(Delivery, JourneyInstance.attributed_delivery_id == Delivery.id)
        .where(JourneyInstance.revenue.is_not(None))
        .group_by(*keys, JourneyInstance.currency)
    )
    found: dict[tuple[Any, ...], dict[str, float]] = defaultdict(dict)
    for *key, currency, total in rows:
        found[tuple(key)][currency] = float(total)
    return found


def _one_currency(revenue: dict[str, float], currency: str, what: str) -> float:
    other = sorted(code for code in revenue if code != currency)
    if other:
        raise CurrencyMismatch(
            f"{what}: revenue in {', '.join(other)} but costs are counted in {currency} "
            f"(CARILLON_COST_CURRENCY); ROI needs one currency: write `currency: {currency}` "
            f"in the goal, or set CARILLON_COST_CURRENCY={other[0]} with prices in {other[0]}"
        )
    return revenue.get(currency, 0.0)


def _spent(session: Session, settings: Settings) -> dict[str, spend.ChannelSpend]:
    """What each spend-costed channel's ad sets spent. Spend in another currency than the
    costs' is refused, never added up."""
    currency = settings.cost_currency
    found = {}
    for channel, source in spend.sources().items():
        found[channel] = spend.channel_spend(session, channel, source)
        other = sorted(found[channel].currencies() - {currency})
        if other:
            raise CurrencyMismatch(
                f"channel {channel}: its ad spend is in {', '.join(other)} (the ad account's "
                f"currency) but costs are counted in {currency} (CARILLON_COST_CURRENCY); "
                f"ROI needs one currency: set CARILLON_COST_CURRENCY={other[0]}, with prices "
                f"and goal values in {other[0]}"
            )
    return found


def _shares(session: Session, settings: Settings, found: dict[str, spend.ChannelSpend]) -> Shares:
    """Each journey's arm's share of each audience's spend: by the people it added to the
    audience, among everybody Carillon added to it."""
    shares: Shares = defaultdict(dict)
    for channel, source in spend.sources().items():
        amounts = found[channel].in_currency(settings.cost_currency)
        added = spend.people_added(session, channel, source.key)
        everybody: dict[str, int] = defaultdict(int)
        for per_target in added.values():
            for target, people in per_target.items():
                everybody[target] += people
        for row, per_target in added.items():
            shares[row][channel] = (
                None
                if found[channel].unread
                else sum(
                    amounts.get(target, 0.0) * people / everybody[target]
                    for target, people in per_target.items()
                )
            )
    return shares


def _figures(
    settings: Settings,
    sent: dict[str, tuple[int, int]],
    revenue: dict[str, float],
    where: tuple[str | None, str | None, str | None],
    what: str,
    spent: Spent,
) -> Figures:
    """`spent`: this row's cost of each channel costed by its spend (those are priced by
    nothing else)."""
    currency = settings.cost_currency
    units = sum(u for _, u in sent.values())
    # Nothing sent costs nothing, whatever the price; a price unknown for what was sent is.
    priced = {c: n for c, n in sent.items() if c not in spent}
    prices = {channel: _price(settings, channel) for channel, (_, u) in priced.items() if u}
    costs = [*spent.values(), *((prices.get(c) or 0.0) * u for c, (_, u) in priced.items())]
    cost = (
        None
        if any(price is None for price in (*prices.values(), *spent.values()))
        else sum(c or 0.0 for c in costs)
    )
    total = _one_currency(revenue, currency, what)
    return Figures(
        *where,
        sent=sum(n for n, _ in sent.values()),
        units=units,
        cost=cost,
        revenue=total,
        currency=currency,
        roi=_roi(total, cost),
    )


def channels(session: Session, settings: Settings) -> list[Figures]:
    """One row per installed channel, in the registry's order."""
    sent = _sent(session)
    revenue = _revenue(session, Delivery.channel)
    whole = {
        c: found.total(settings.cost_currency) for c, found in _spent(session, settings).items()
    }
    rows = []
    for channel in registry.names():
        mine = {channel: sent.get((), {}).get(channel, (0, 0))}
        rows.append(
            _figures(
                settings,
                mine,
                revenue.get((channel,), {}),
                (channel, None, None),
                f"channel {channel}",
                {channel: whole[channel]} if channel in whole else {},
            )
        )
    return rows


def _share(whole: Spent, shares: Shares, keys: list[tuple[str, str | None]]) -> Spent:
    """The spend borne by the rows of `keys` together, per spend-costed channel."""
    found: Spent = {}
    for channel in whole:
        parts = [shares[key].get(channel, 0.0) for key in keys if key in shares]
        found[channel] = None if None in parts else sum(p or 0.0 for p in parts)
    return found


def journeys(session: Session, settings: Settings) -> list[Figures]:
    """Per journey (every arm together), then per arm when it has a split."""
    sent = _sent(session, Delivery.journey_id, Delivery.arm)
    revenue = _revenue(session, Delivery.journey_id, Delivery.arm)
    found = _spent(session, settings)
    spent: Spent = {c: f.total(settings.cost_currency) for c, f in found.items()}
    shares = _shares(session, settings, found)
    ids = sorted({key[0] for key in sent} | {key[0] for key in revenue})
    rows = []
    for journey in ids:
        arms = sorted({key[1] for key in (*sent, *revenue) if key[0] == journey and key[1]})
        whole: dict[str, tuple[int, int]] = defaultdict(lambda: (0, 0))
        whole_revenue: dict[str, float] = defaultdict(float)
        for (jid, _arm), per_channel in sent.items():
            if jid == journey:
                for channel, (n, u) in per_channel.items():
                    whole[channel] = (whole[channel][0] + n, whole[channel][1] + u)
        for (jid, _arm), per_currency in revenue.items():
            if jid == journey:
                for code, total in per_currency.items():
                    whole_revenue[code] += total
        what = f"journey {journey}"
        mine = [key for key in shares if key[0] == journey]
        rows.append(
            _figures(
                settings,
                whole,
                whole_revenue,
                (None, journey, ALL_ARMS),
                what,
                _share(spent, shares, mine),
            )
        )
        for arm in arms:
            rows.append(
                _figures(
                    settings,
                    sent.get((journey, arm), {}),
                    revenue.get((journey, arm), {}),
                    (None, journey, arm),
                    f"{what} arm {arm}",
                    _share(spent, shares, [(journey, arm)]),
                )
            )
    return rows


# --- for people ----------------------------------------------------------------------------


def number(value: float | None) -> str:
    """A figure for a spreadsheet: six significant digits, empty when unknown."""
    return "" if value is None else f"{value:.6g}"


MONEY_HEADER = ("SENT", "UNITS", "COST", "REVENUE", "ROI")


class Priced(Protocol):
    """A table row with what its messages cost and brought back (a channel's, a journey's)."""

    # Read-only, as the rows are frozen dataclasses.
    @property
    def sent(self) -> int: ...
    @property
    def units(self) -> int: ...
    @property
    def cost(self) -> float | None: ...
    @property
    def revenue(self) -> float: ...
    @property
    def currency(self) -> str: ...
    @property
    def roi(self) -> float | None: ...


def money_cells(row: Priced) -> tuple[str, ...]:
    """The `MONEY_HEADER` columns of a row, as the tables print them."""
    return (
        f"{row.sent:,}",
        f"{row.units:,}",
        f"{amount(row.cost)} {row.currency}",
        f"{amount(row.revenue)} {row.currency}",
        change(row.roi),
    )


def aligned(cells: Sequence[Sequence[str]], names: int) -> list[str]:
    """A plain-text table's lines: the first `names` columns to the left, figures right."""
    widths = [max(len(line[i]) for line in cells) for i in range(len(cells[0]))]
    return [
        "  ".join(
            cell.ljust(w) if i < names else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in cells
    ]


def render(rows: list[Figures], fmt: str, by: str) -> str:
    """`by`: "channels" or "journeys", the columns that name a row."""
    names = ("channel",) if by == "channels" else ("journey", "arm")
    if fmt == "json":
        return json.dumps([asdict(row) for row in rows], indent=2)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([*names, "sent", "units", "cost", "revenue", "currency", "roi"])
        for row in rows:
            writer.writerow(
                [
                    *(getattr(row, name) for name in names),
                    row.sent,
                    row.units,
                    number(row.cost),
                    number(row.revenue),
                    row.currency,
                    number(row.roi),
                ]
            )
        return out.getvalue()
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    if not rows:
        return "Nothing sent yet."
    header = (*(name.upper() for name in names), *MONEY_HEADER)
    cells = [header] + [
        (*(str(getattr(row, name) or "") for name in names), *money_cells(row)) for row in rows
    ]
    lines = aligned(cells, len(names))
    lines.append("ROI = (revenue - cost) / cost; n/a without a known price or with no cost.")
    return "\n".join(lines)
