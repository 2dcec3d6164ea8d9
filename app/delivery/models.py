"""The outbox: one row per message Carillon decided to send."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, BigId, JSONType, UTCDateTime

PENDING = "pending"
SENDING = "sending"
SENT = "sent"
DRY_RUN = "dry_run"
FAILED = "failed"
# Transient failures until the channel's attempts ran out: a dead letter with the last error.
DEAD = "dead"
CANCELLED = "cancelled"
# Refused at send time by policy (no consent, capped and dropped): never sent, never retried.
SUPPRESSED = "suppressed"
# A `channel: preferred` send for which none of the person's channels would do when the step
# ran (no consent, no address, no variant): nothing to send; the reason is in `error`.
SKIPPED = "skipped"
# Claimed, and its worker stopped during the provider call: it may or may not have been sent.
# Never resent automatically (a second e-mail or SMS is worse than none); ops review and replay.
UNKNOWN = "unknown"


class Delivery(Base):
    __tablename__ = "deliveries"
    __table_args__ = (
        # One delivery per (journey instance, step): the guarantee against double sends.
        UniqueConstraint("instance_id", "step_path"),
        Index(
            "ix_deliveries_pending",
            "enqueued_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index("ix_deliveries_profile", "profile_id"),
        # The dashboard's sends per minute read the last hour's rows only.
        Index(
            "ix_deliveries_sent_at",
            "sent_at",
            postgresql_where=text("sent_at IS NOT NULL"),
            sqlite_where=text("sent_at IS NOT NULL"),
        ),
        # Twilio's status callbacks name the message by its SID only.
        Index("ix_deliveries_provider_message_id", "provider_message_id"),
        # One delivery per Idempotency-Key of a transactional send (per send key).
        UniqueConstraint("idempotency_key", name="uq_deliveries_idempotency_key"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # The trip that sent it; None for a transactional send through `POST /v1/messages`,
    # which belongs to no trip (its `step_path` then says which message: `message:<name>`).
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("journey_instances.id"))
    step_path: Mapped[str] = mapped_column(String(100))
    journey_id: Mapped[str] = mapped_column(String(100))
    profile_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"))
    channel: Mapped[str] = mapped_column(String(32))
    # The A/B/n arm of the trip when the message was planned, for per-arm results.
    arm: Mapped[str | None] = mapped_column(String(50))
    # The rendered message, so ops can read exactly what was (or would have been) sent.
    content: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    provider_message_id: Mapped[str | None] = mapped_column(String(255))
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    enqueued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A pending row retried after a transient failure is not due before this (back-off).
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A transactional send's `Idempotency-Key`, hashed with the send key's name (the raw key
    # is the caller's and is not kept), and a hash of the request it came with: the same key
    # with the same request is the same delivery, with another request a mistake.
    # What the provider bills this message as, in its channel's `cost_unit` (an SMS's
    # segments), measured on the rendered content; None (older rows): one.
    units: Mapped[int | None] = mapped_column(Integer)
    idempotency_key: Mapped[str | None] = mapped_column(String(64))
    request_digest: Mapped[str | None] = mapped_column(String(64))


class DeliveryEvent(Base):
    """One moment of a delivery's life besides its current status: a deferral (quiet hours, a
    frequency cap, a retry), a suppression, a provider webhook (delivered, opened, bounced).
    `carillon deliveries show` tells the story from these rows."""

    __tablename__ = "delivery_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    # deferred, suppressed, retry, or a provider's own event name (delivered, open, bounce…)
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)
    # Who said it: "policy", "retries", "sendgrid", "twilio"…
    source: Mapped[str] = mapped_column(String(32))
    # The provider's id of the callback, so a replayed webhook is recorded once.
    external_id: Mapped[str | None] = mapped_column(String(255), unique=True)
