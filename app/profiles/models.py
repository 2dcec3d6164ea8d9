"""The profile store: one row per person, their identities and their traits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, JSONType, UTCDateTime


class Profile(Base):
    __tablename__ = "profiles"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # A profile merged into another keeps pointing at the survivor, for audit and late lookups.
    merged_into: Mapped[str | None] = mapped_column(String(36))


# Identity kinds: the ids an event carries, and the identify traits that double as identities
# (so a profile can be found by them and messaged on them).
USER_ID = "user_id"
ANONYMOUS_ID = "anonymous_id"
CONTACT_TRAITS = ("email", "phone")


class Identity(Base):
    """An identifier that resolves to exactly one profile (userId, anonymousId, email, phone)."""

    __tablename__ = "profile_identities"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[str] = mapped_column(String(255), primary_key=True)
    profile_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Trait(Base):
    """One trait with the event time and messageId that set it: last write wins by event time,
    messageId breaking ties, so any arrival order converges to the same value."""

    __tablename__ = "profile_traits"

    profile_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[Any] = mapped_column(JSONType)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)
    message_id: Mapped[str] = mapped_column(String(255))
