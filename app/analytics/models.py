"""What the ad platforms report spent, read after the fact (docs/analytics.md#ad-spend)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, BigId, UTCDateTime


class AdSpend(Base):
    """One object's (an ad set's) spend on one day, as the provider last reported it: a
    later read of the same day replaces it, since the provider revises recent days."""

    __tablename__ = "ad_spend"
    __table_args__ = (UniqueConstraint("channel", "ad_set", "day"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(32))
    ad_set: Mapped[str] = mapped_column(String(64))
    day: Mapped[date] = mapped_column(Date)
    amount: Mapped[float] = mapped_column(Numeric(18, 4, asdecimal=False))
    currency: Mapped[str] = mapped_column(String(3))
    read_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SpendRead(Base):
    """How reading one ad set's spend goes: when it last worked and up to which day, the last
    failure in the provider's words, and when the next read is due. A scheduler claims a read
    by moving `next_read_at` on, so two schedulers never read the same ad set at once."""

    __tablename__ = "spend_reads"
    __table_args__ = (UniqueConstraint("channel", "ad_set"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(32))
    ad_set: Mapped[str] = mapped_column(String(64))
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    read_through: Mapped[date | None] = mapped_column(Date)
    attempted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    next_read_at: Mapped[datetime] = mapped_column(UTCDateTime)
