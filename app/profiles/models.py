"""The profile store: one row per person, their identities and their traits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, BigId, JSONType, UTCDateTime


class Profile(Base):
    __tablename__ = "profiles"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # A profile merged into another keeps pointing at the survivor, for audit and late lookups.
    merged_into: Mapped[str | None] = mapped_column(String(36))
    # Set by an erasure request (app/profiles/erasure.py): the row stays, holding nothing about
    # the person, so the trips and deliveries that point at it keep their counts.
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


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
    # Read only with the identity (`repository.find_identities`): holding the profile keeps it
    # in the session, where the resolution that follows finds it without a query. Writes go
    # through `profile_id`.
    profile: Mapped[Profile] = relationship(lazy="raise", viewonly=True)


class Trait(Base):
    """One trait with the event time and messageId that set it: last write wins by event time,
    messageId breaking ties, so any arrival order converges to the same value."""

    __tablename__ = "profile_traits"

    profile_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[Any] = mapped_column(JSONType)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)
    message_id: Mapped[str] = mapped_column(String(255))


class ErasedIdentity(Base):
    """What is kept of an erased person's identity: a keyed hash (HMAC-SHA256 with
    CARILLON_SECRET_KEY) of `kind:value`, so a later event that names it is recognised and
    dropped, while the value itself cannot be read back or guessed without the key."""

    __tablename__ = "erased_identities"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    profile_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"), index=True)
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ProfileAudit(Base):
    """Who exported or erased whose data, when, and what it covered (GDPR article 30 records).
    `actor` names the credential ("admin token", "read key crm", "command line"), never the
    credential itself; the id asked for is not kept either, since it may be an e-mail address."""

    __tablename__ = "profile_audit"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    action: Mapped[str] = mapped_column(String(16))  # export | erase
    profile_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"), index=True)
    actor: Mapped[str] = mapped_column(String(100))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType)
    note: Mapped[str | None] = mapped_column(Text)
