"""A journey's story as recorded in the database: who entered, waited, got what, and left.

The simulator prints it and the live runtime can be read back with it, so the two are
compared on the same terms: a timeline is built from rows, never from what the code intended.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.delivery import models
from app.delivery.models import Delivery
from app.journeys.models import JourneyInstance, JourneyVersion, SplitWinner, Timer

# Within one instant, the order things happen in.
_RANK = {
    "loaded": -1,
    "winner": 0,
    "entered": 1,
    "wait": 2,
    "resumed": 3,
    "send": 4,
    "conversion": 5,
    "left": 6,
}

# Sent, or would have been (a dry run): what a journey test counts as a send.
WENT_OUT = (models.SENT, models.DRY_RUN)


@dataclass(frozen=True)
class Entry:
    at: datetime
    step: str  # the step's path; "" for the trip as a whole
    kind: str  # loaded | winner | entered | wait | resumed | send | conversion | left
    detail: str
    channel: str | None = None
    content: dict[str, Any] | None = None
    status: str | None = None
    arm: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "at": self.at.isoformat()}


def timeline(session: Session, journey_id: str) -> list[Entry]:
    """Every trip of `journey_id`, merged in time order (ties in the order things happen)."""
    entries: list[Entry] = []
    trips = session.execute(
        select(JourneyInstance, JourneyVersion.version)
        .join(JourneyVersion, JourneyVersion.id == JourneyInstance.journey_version_id)
        .where(JourneyInstance.journey_id == journey_id)
        .order_by(JourneyInstance.id)
    ).all()
    for trip, version in trips:
        entries.append(Entry(trip.entered_at, "", "entered", f"version {version}"))
        for timer in session.scalars(select(Timer).where(Timer.instance_id == trip.id)):
            due = timer.due_at.isoformat()
            entries.append(Entry(timer.created_at, timer.step_path, "wait", f"until {due}"))
            if timer.fired_at is not None:
                entries.append(Entry(timer.fired_at, timer.step_path, "resumed", "timer fired"))
        for delivery in session.scalars(select(Delivery).where(Delivery.instance_id == trip.id)):
            entries.append(
                Entry(
                    # when it went out: later than planned when quiet hours or a cap deferred it
                    delivery.sent_at or delivery.created_at,
                    delivery.step_path,
                    "send",
                    # why it did not go out (suppressed, failed, cancelled), next to the channel
                    delivery.channel
                    if delivery.status in WENT_OUT
                    else f"{delivery.channel}: {delivery.error}",
                    delivery.channel,
                    delivery.content,
                    delivery.status,
                    delivery.arm,
                )
            )
        if trip.converted_at is not None:
            entries.append(Entry(trip.converted_at, "", "conversion", "goal reached", arm=trip.arm))
        if trip.ended_at is not None:
            detail = f"{trip.status}: {trip.exit_reason}"
            entries.append(Entry(trip.ended_at, "", "left", detail, arm=trip.arm))
    entries.extend(winner_entries(session, journey_id))
    return sorted(entries, key=lambda e: (e.at, _RANK[e.kind]))


def history(session: Session, journey_id: str) -> list[Entry]:
    """The journey's own story, without its trips: each version loaded and each A/B test
    decided. Empty when no version of the journey was ever loaded."""
    entries = [
        Entry(loaded_at, "", "loaded", f"version {version} from {file}")
        for version, loaded_at, file in session.execute(
            select(JourneyVersion.version, JourneyVersion.loaded_at, JourneyVersion.file).where(
                JourneyVersion.journey_id == journey_id
            )
        )
    ]
    entries.extend(winner_entries(session, journey_id))
    return sorted(entries, key=lambda e: (e.at, _RANK[e.kind]))


def winner_entries(session: Session, journey_id: str) -> list[Entry]:
    """The A/B test decisions of every version of the journey: from then on, new entrants
    all took the winning arm."""
    rows = session.execute(
        select(SplitWinner, JourneyVersion.version)
        .join(JourneyVersion, JourneyVersion.id == SplitWinner.journey_version_id)
        .where(JourneyVersion.journey_id == journey_id)
        .order_by(SplitWinner.decided_at)
    ).all()
    return [
        Entry(
            row.decided_at,
            row.split_path,
            "winner",
            f"version {version}: arm {row.arm} won on {row.metric} (p = {row.p_value:.3g}); "
            f"new entrants all go to {row.arm}",
            arm=row.arm,
        )
        for row, version in rows
    ]


def render(entries: list[Entry]) -> str:
    """The timeline as text, one line per entry and the message's fields below a send."""
    lines = []
    for entry in entries:
        when = entry.at.strftime("%Y-%m-%d %H:%M:%S")
        arm = f" [arm {entry.arm}]" if entry.arm else ""
        status = f" ({entry.status})" if entry.status else ""
        lines.append(f"{when}  {entry.step or '-':<8} {entry.kind:<10} {entry.detail}{arm}{status}")
        for field, value in (entry.content or {}).items():
            lines.append(f"{'':30}{field}: {value}")
    return "\n".join(lines)
