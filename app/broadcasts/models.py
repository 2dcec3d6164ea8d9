"""A started broadcast and its recipients: the audience as it was at start, one row each,
whose state changes in the same transaction as the delivery it plans (so a crash or a pause
never sends anyone twice nor skips anyone)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime

# Broadcast states (app/broadcasts/control.py moves between them).
RUNNING = "running"
PAUSED = "paused"
CANCELLED = "cancelled"
DONE = "done"

# Recipient states.
PENDING = "pending"  # not planned yet: due at `due_at`
QUEUED = "queued"  # its delivery is in the outbox (`delivery_id`)
ENTERED = "entered"  # started a trip of the broadcast's journey
SKIPPED = "skipped"  # no message planned, `reason` says why (no consent, no address, erased)
WITHDRAWN = "cancelled"  # the broadcast was cancelled before their turn


class Broadcast(Base):
    """One broadcast started from its file; `source` is the file's text as it was started,
    so an edit afterwards changes nothing of what is being sent."""

    __tablename__ = "broadcasts"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    file: Mapped[str] = mapped_column(String(500))
    source: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    # The send rate's token bucket: tokens left at `tokens_at` (None rate: unlimited).
    rate_per_second: Mapped[float | None] = mapped_column(Float)
    tokens: Mapped[float] = mapped_column(Float, default=0.0)
    tokens_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Recipient(Base):
    """One person of the audience snapshot."""

    __tablename__ = "broadcast_recipients"
    __table_args__ = (Index("ix_broadcast_recipients_due", "broadcast_id", "state", "due_at"),)

    broadcast_id: Mapped[str] = mapped_column(ForeignKey("broadcasts.id"), primary_key=True)
    profile_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    # When their message is due: the broadcast's time in their own timezone, or the one instant.
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(Text)
    delivery_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("deliveries.id"))
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
