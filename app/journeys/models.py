"""Journey versions, the people travelling through them, and their timers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, BigId, UTCDateTime
from app.yamlfiles.versions import FileVersion

ACTIVE = "active"


class JourneyVersion(FileVersion, Base):
    """Every version of every journey file ever loaded; instances pin the one they started on."""

    __tablename__ = "journey_versions"
    __table_args__ = (UniqueConstraint("journey_id", "version"),)

    journey_id: Mapped[str] = mapped_column(String(100), index=True)


class JourneyInstance(Base):
    """One person's trip through one journey version; `cursor` is the path of the step it is at."""

    __tablename__ = "journey_instances"
    __table_args__ = (
        # At most one live instance per person and journey.
        Index(
            "uq_journey_instances_live",
            "journey_id",
            "profile_id",
            unique=True,
            postgresql_where=text("status = 'active'"),
            sqlite_where=text("status = 'active'"),
        ),
        Index("ix_journey_instances_profile_status", "profile_id", "status"),
        Index("ix_journey_instances_entry", "journey_id", "profile_id", "entered_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    journey_id: Mapped[str] = mapped_column(String(100))
    journey_version_id: Mapped[int] = mapped_column(ForeignKey("journey_versions.id"))
    profile_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"))
    trigger_event_id: Mapped[int] = mapped_column(ForeignKey("events.id"))
    status: Mapped[str] = mapped_column(String(16))  # active | completed | exited | converted
    cursor: Mapped[str] = mapped_column(String(100))
    # The A/B/n arm a `split` put this person in (None before any split).
    arm: Mapped[str | None] = mapped_column(String(50))
    # True when the arm was given by a split's declared winner rather than drawn: such trips
    # are left out of the experiment's counts, which compare drawn arms only.
    arm_by_winner: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    # Set once, when the journey's goal event arrives within its window.
    converted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The conversion's value (the goal's `value`, in its `currency`), and the message credited
    # with it: the trip's last one sent within its channel's attribution window. No foreign key:
    # deliveries already point at trips, and a cycle would order neither table first.
    revenue: Mapped[float | None] = mapped_column(Numeric(18, 4, asdecimal=False))
    currency: Mapped[str | None] = mapped_column(String(3))
    attributed_delivery_id: Mapped[int | None] = mapped_column(BigId)
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    exit_reason: Mapped[str | None] = mapped_column(String(255))


class Timer(Base):
    """A durable wait: the scheduler resumes the instance at `due_at`."""

    __tablename__ = "journey_timers"
    __table_args__ = (
        UniqueConstraint("instance_id", "step_path"),
        Index(
            "ix_journey_timers_due",
            "due_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("journey_instances.id"), index=True)
    step_path: Mapped[str] = mapped_column(String(100))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16))  # pending | fired | cancelled | error
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)


class SplitWinner(Base):
    """The arm a split's `winner:` rule declared, once per journey version and split: from
    `decided_at` on, new entrants all take it. Never updated; a new file version starts a new
    test."""

    __tablename__ = "split_winners"
    __table_args__ = (UniqueConstraint("journey_version_id", "split_path"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    journey_version_id: Mapped[int] = mapped_column(ForeignKey("journey_versions.id"))
    split_path: Mapped[str] = mapped_column(String(100))
    arm: Mapped[str] = mapped_column(String(50))
    metric: Mapped[str] = mapped_column(String(16))
    p_value: Mapped[float] = mapped_column(Float)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime)
