"""The segments' tables: the loaded files, each person's computed traits (with what a window
needs to age them), and who is in which segment since when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, BigId, JSONType, UTCDateTime
from app.yamlfiles.versions import FileVersion


class SegmentVersion(FileVersion, Base):
    """Every version of every segment file loaded; workers read the current ones from here,
    so a reload reaches them without a restart, and a broken file keeps its last good one."""

    __tablename__ = "segment_versions"
    __table_args__ = (UniqueConstraint("segment_id", "version"),)

    segment_id: Mapped[str] = mapped_column(String(100), index=True)
    # The backfill of existing profiles (app/segments/backfill.py): the last profile id done,
    # how many are done, and when it finished (None: still to do).
    backfill_cursor: Mapped[str | None] = mapped_column(String(36))
    backfill_done: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    backfilled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ComputedTrait(Base):
    """One computed trait of one person. `value` is what CEL reads (None: no value, `has()` is
    false); `state` what a running aggregate needs besides (the event time of a first/last);
    `expires_at` when the oldest event of a windowed trait leaves its window: the due time the
    scheduler recomputes it at (indexed, like a journey timer)."""

    __tablename__ = "computed_traits"
    __table_args__ = (
        Index(
            "ix_computed_traits_due",
            "expires_at",
            postgresql_where=text("expires_at IS NOT NULL"),
            sqlite_where=text("expires_at IS NOT NULL"),
        ),
    )

    profile_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[Any] = mapped_column(JSONType, nullable=True)
    state: Mapped[Any] = mapped_column(JSONType, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TraitEvent(Base):
    """One event's contribution to a windowed or distinct trait: its time and value. Dropped
    once out of the window, so the table holds each window's events and no more."""

    __tablename__ = "computed_trait_events"
    __table_args__ = (Index("ix_computed_trait_events_trait", "profile_id", "name", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    profile_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"))
    name: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    value: Mapped[Any] = mapped_column(JSONType, nullable=True)


class Membership(Base):
    """A person in a segment (or a lifecycle stage, `stage`) since `entered_at`; the row goes
    when they leave."""

    __tablename__ = "segment_memberships"
    __table_args__ = (Index("ix_segment_memberships_segment", "segment_id", "entered_at"),)

    profile_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"), primary_key=True)
    segment_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    stage: Mapped[bool] = mapped_column(Boolean, default=False)
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime)
