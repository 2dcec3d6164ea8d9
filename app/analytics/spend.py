"""Ad spend read from the ad platforms: for a channel whose spec has a `SpendSource` with
objects configured (the ad sets showing ads to Carillon's audiences), its cost is what the
platform reports those objects spent, not a price per person.

The scheduler reads each ad set's spend per day (`read_due`) once an hour: from four weeks back
the first time, then again from a few days before the last day read, since platforms revise
recent days; the days read replace what was stored for them, and a day no longer reported is
gone. A failed read keeps every stored day as it was and says why on its `SpendRead` row, which
/ops and `carillon report channels` show: throttling and outages are tried again with back-off,
an expired token an hour later (by then, maybe, a new one is set).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, distinct, func, select, update
from sqlalchemy.orm import Session

from app import clock
from app.analytics.models import AdSpend, SpendRead
from app.db import dialect_insert, session_scope
from app.delivery import models
from app.delivery.models import Delivery
from app.journeys.lifecycle import REMOVAL_SUFFIX
from channels import registry
from channels.base import DaySpend, SpendSource, SpendUnreadable

log = logging.getLogger(__name__)

READ_EVERY = timedelta(hours=1)
# Days before the last one read that are read again: the platforms still revise them.
REVISED_DAYS = 3
FIRST_DAYS = 28
# A throttled or failing read waits this long, doubled per failure, at most READ_EVERY.
RETRY_FIRST = timedelta(minutes=1)
# A claimed read not finished by then (its scheduler died) is due again.
CLAIM_FOR = timedelta(minutes=10)


def sources() -> dict[str, SpendSource]:
    """The channels costed by their spend: those whose source has objects configured."""
    return {
        name: spec.spend
        for name, spec in registry.specs().items()
        if spec.spend is not None and spec.spend.objects()
    }


def targets(source: SpendSource) -> dict[str, str]:
    """Each configured object (ad set) → the content value (audience) it shows ads to."""
    return {ad_set: target for target, ad_sets in source.objects().items() for ad_set in ad_sets}


# --- reading ---------------------------------------------------------------------------------


def read_due() -> int:
    """Read every configured ad set whose turn came; returns how many were read."""
    done = 0
    for channel, source in sources().items():
        for ad_set in targets(source):
            window = _claim(channel, ad_set)
            if window is None:
                continue
            try:
                days = source.read(ad_set, *window)
            except SpendUnreadable as exc:
                _failed(channel, ad_set, exc)
                continue
            _store(channel, ad_set, window, days)
            done += 1
    return done


def _claim(channel: str, ad_set: str) -> tuple[date, date] | None:
    """The days to read when this ad set's read is due and this process won it, else None."""
    now = clock.now()
    mine = (SpendRead.channel == channel) & (SpendRead.ad_set == ad_set)
    with session_scope() as session:
        session.execute(
            dialect_insert(session)(SpendRead)
            .values(channel=channel, ad_set=ad_set, failures=0, next_read_at=now)
            .on_conflict_do_nothing()
        )
        # One UPDATE decides: two schedulers never both win.
        won = session.execute(
            update(SpendRead)
            .where(mine, SpendRead.next_read_at <= now)
            .values(next_read_at=now + CLAIM_FOR)
            .returning(SpendRead.read_through)
        ).first()
    if won is None:
        return None
    through, today = won[0], now.date()
    since = (
        today - timedelta(days=FIRST_DAYS - 1)
        if through is None
        else min(through, today) - timedelta(days=REVISED_DAYS)
    )
    return since, today


def _store(channel: str, ad_set: str, window: tuple[date, date], days: list[DaySpend]) -> None:
    """The days read replace the stored ones of the window, in one transaction."""
    since, until = window
    now = clock.now()
    latest = {day.day: day for day in days if since <= day.day <= until}
    with session_scope() as session:
        session.execute(
            delete(AdSpend).where(
                AdSpend.channel == channel,
                AdSpend.ad_set == ad_set,
                AdSpend.day.between(since, until),
            )
        )
        session.add_all(
            AdSpend(
                channel=channel,
                ad_set=ad_set,
                day=day.day,
                amount=day.amount,
                currency=day.currency,
                read_at=now,
            )
            for day in latest.values()
        )
        session.execute(
            update(SpendRead)
            .where(SpendRead.channel == channel, SpendRead.ad_set == ad_set)
            .values(
                read_at=now,
                read_through=until,
                attempted_at=now,
                error=None,
                failures=0,
                next_read_at=now + READ_EVERY,
            )
        )
    log.info(
        "%s ad set %s: spend read from %s to %s, %d days with spend",
        channel,
        ad_set,
        since,
        until,
        len(latest),
    )


def _failed(channel: str, ad_set: str, exc: SpendUnreadable) -> None:
    now = clock.now()
    mine = (SpendRead.channel == channel) & (SpendRead.ad_set == ad_set)
    with session_scope() as session:
        failures = (session.scalar(select(SpendRead.failures).where(mine)) or 0) + 1
        wait = READ_EVERY
        if exc.transient:
            wait = (
                timedelta(seconds=exc.retry_after_seconds)
                if exc.retry_after_seconds is not None
                else min(RETRY_FIRST * 2 ** (failures - 1), READ_EVERY)
            )
        session.execute(
            update(SpendRead)
            .where(mine)
            .values(attempted_at=now, error=exc.reason, failures=failures, next_read_at=now + wait)
        )
    log.warning(
        "%s ad set %s: spend not read (%s), stored days kept; next try at %s",
        channel,
        ad_set,
        exc.reason,
        (now + wait).isoformat(timespec="seconds"),
    )


# --- what was read ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadStatus:
    """How reading one configured ad set's spend goes, for ops."""

    channel: str
    ad_set: str
    target: str
    setting: str
    read_at: datetime | None
    read_through: date | None
    attempted_at: datetime | None
    error: str | None
    failures: int
    next_read_at: datetime | None

    @property
    def stale(self) -> bool:
        return self.read_at is None or self.error is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "ad_set": self.ad_set,
            "audience": self.target,
            "read_at": _iso(self.read_at),
            "read_through": _iso(self.read_through),
            "attempted_at": _iso(self.attempted_at),
            "error": self.error,
            "failures": self.failures,
            "next_read_at": _iso(self.next_read_at),
            "stale": self.stale,
            "note": self.note(),
        }

    def note(self) -> str:
        """One line: why this ad set's spend is stale, or up to when it is read."""
        where = f"{self.channel} ad set {self.ad_set} (audience {self.target})"
        if self.error is None and self.read_at is None:
            return f"{where}: spend not read yet ({self.setting}); its cost is unknown until then"
        if self.error is None:
            return f"{where}: spend read through {self.read_through} at {_at(self.read_at)}"
        known = (
            f"spend known through {self.read_through} (read at {_at(self.read_at)})"
            if self.read_at is not None
            else "its cost is unknown until a read works"
        )
        return (
            f"{where}: spend is stale: reading failed {self.failures} time(s), last at "
            f"{_at(self.attempted_at)}: {self.error}; {known}; next try at "
            f"{_at(self.next_read_at)}"
        )


def _iso(moment: date | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _at(moment: datetime | None) -> str:
    return "never" if moment is None else moment.isoformat(timespec="minutes")


def statuses(session: Session) -> list[ReadStatus]:
    """Every configured ad set, read or not, in configuration order."""
    rows = {(r.channel, r.ad_set): r for r in session.scalars(select(SpendRead))}
    found = []
    for channel, source in sources().items():
        for ad_set, target in targets(source).items():
            row = rows.get((channel, ad_set))
            found.append(
                ReadStatus(
                    channel,
                    ad_set,
                    target,
                    source.setting,
                    row.read_at if row else None,
                    row.read_through if row else None,
                    row.attempted_at if row else None,
                    row.error if row else None,
                    row.failures if row else 0,
                    row.next_read_at if row else None,
                )
            )
    return found


def stale_notes(session: Session) -> list[str]:
    return [status.note() for status in statuses(session) if status.stale]


@dataclass(frozen=True)
class ChannelSpend:
    """A channel's stored spend per content value (audience) and currency, and the configured
    ad sets never read yet (their spend unknown)."""

    by_target: dict[str, dict[str, float]]
    unread: tuple[str, ...]

    def currencies(self) -> set[str]:
        return {code for per in self.by_target.values() for code in per}

    def in_currency(self, currency: str) -> dict[str, float]:
        return {target: per.get(currency, 0.0) for target, per in self.by_target.items()}

    def total(self, currency: str) -> float | None:
        """None when some of it is unknown or in another currency: never a partial sum."""
        if self.unread or self.currencies() - {currency}:
            return None
        return sum(self.in_currency(currency).values())


def channel_spend(session: Session, channel: str, source: SpendSource) -> ChannelSpend:
    """Everything stored for the configured ad sets, each counted for the audience it is
    configured for now."""
    owner = targets(source)
    found: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for ad_set, currency, amount in session.execute(
        select(AdSpend.ad_set, AdSpend.currency, func.sum(AdSpend.amount))
        .where(AdSpend.channel == channel, AdSpend.ad_set.in_(owner))
        .group_by(AdSpend.ad_set, AdSpend.currency)
    ):
        found[owner[ad_set]][currency] += float(amount)
    read = set(
        session.scalars(
            select(SpendRead.ad_set).where(
                SpendRead.channel == channel,
                SpendRead.ad_set.in_(owner),
                SpendRead.read_at.is_not(None),
            )
        )
    )
    return ChannelSpend(
        {target: dict(per) for target, per in found.items()},
        tuple(ad_set for ad_set in owner if ad_set not in read),
    )


def people_added(
    session: Session, channel: str, key: str
) -> dict[tuple[str, str | None], dict[str, int]]:
    """People a journey's arm added under each value of `key` (an audience), messages really
    sent; removals (a trip's exit) add nobody."""
    target = Delivery.content[key].as_string()
    found: dict[tuple[str, str | None], dict[str, int]] = defaultdict(dict)
    for journey, arm, value, people in session.execute(
        select(Delivery.journey_id, Delivery.arm, target, func.count(distinct(Delivery.profile_id)))
        .where(
            Delivery.channel == channel,
            Delivery.status == models.SENT,
            Delivery.step_path.not_like(f"%{REMOVAL_SUFFIX}"),
        )
        .group_by(Delivery.journey_id, Delivery.arm, target)
    ):
        if value is not None:
            found[(journey, arm)][value] = int(people)
    return found
