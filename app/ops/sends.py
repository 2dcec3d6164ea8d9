"""Messages handed to each channel per minute over the last hour, from deliveries' `sent_at`.

Dry runs count, as in the queues panel's "done": they show the pipeline moving on a machine
without provider keys. One query: a sum per minute, so the rows never leave the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from app.delivery.models import Delivery
from app.ops.queues import DONE
from channels import registry

MINUTES = 60


@dataclass(frozen=True)
class SendsPerMinute:
    start: datetime  # the first minute's start; the last minute is the one under way
    counts: dict[str, list[int]]  # per installed channel, one count per minute, oldest first

    @property
    def total(self) -> int:
        return sum(sum(minutes) for minutes in self.counts.values())


def per_minute(session: Session, now: datetime, minutes: int = MINUTES) -> SendsPerMinute:
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    edges = [end - timedelta(minutes=minutes - i) for i in range(minutes + 1)]
    at = Delivery.sent_at
    sums = [
        func.coalesce(func.sum(case((and_(at >= low, at < high), 1), else_=0)), 0)
        for low, high in zip(edges, edges[1:], strict=False)
    ]
    found = {
        channel: [int(n) for n in counts]
        for channel, *counts in session.execute(
            select(Delivery.channel, *sums)
            .where(Delivery.status.in_(DONE), at >= edges[0], at < end)
            .group_by(Delivery.channel)
        )
    }
    return SendsPerMinute(
        edges[0], {channel: found.get(channel, [0] * minutes) for channel in registry.names()}
    )
