"""Stored events: the durable record of everything a shop told us."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, BigId, JSONType, UTCDateTime


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        # Segment deduplicates on messageId per source; so do we.
        UniqueConstraint("source", "message_id"),
        Index(
            "ix_events_unprocessed",
            "enqueued_at",
            postgresql_where=text("processed_at IS NULL"),
            sqlite_where=text("processed_at IS NULL"),
        ),
        # "Did this person already do X after time t?" (exit events that overtook a trigger).
        Index("ix_events_profile_name_ts", "profile_id", "name", "timestamp"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(64))
    message_id: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(16))
    # `event` of a track call, `name` of a page call.
    name: Mapped[str | None] = mapped_column(String(255))
    user_id: Mapped[str | None] = mapped_column(String(255))
    anonymous_id: Mapped[str | None] = mapped_column(String(255))
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    profile_id: Mapped[str | None] = mapped_column(String(36))
    enqueued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Routing that raised: how often, the last reason, and when it was given up on (then the
    # event is no longer retried nor swept, and ops see it as failed).
    routing_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    routing_error: Mapped[str | None] = mapped_column(Text)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
