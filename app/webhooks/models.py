"""Inbound SMS, kept once per provider message id: the proof of an opt-out (TCPA asks for it)
and what makes a replayed inbound webhook change nothing."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, BigId, UTCDateTime


class InboundMessage(Base):
    __tablename__ = "inbound_messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(16))
    # Twilio's MessageSid.
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    sender: Mapped[str] = mapped_column(String(64))
    # The person the sender's phone identity belongs to; None for an unknown number.
    profile_id: Mapped[str | None] = mapped_column(ForeignKey("profiles.id"), index=True)
    body: Mapped[str] = mapped_column(Text)
    # stop, start, help, or None for any other text.
    keyword: Mapped[str | None] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
