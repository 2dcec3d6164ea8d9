"""What a send-time check answers, and what it is given."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.delivery.models import Delivery
from app.settings import Settings


@dataclass(frozen=True)
class SendContext:
    session: Session
    delivery: Delivery
    # The person's traits as of now (consent, timezone, …).
    traits: Mapping[str, Any]
    now: datetime
    settings: Settings


@dataclass(frozen=True)
class Suppress:
    """Do not send, ever: recorded on the row as `suppressed` with the reason."""

    reason: str


@dataclass(frozen=True)
class Defer:
    """Not now: the row goes back to `pending`, due at `until`, with the reason recorded."""

    until: datetime
    reason: str


@dataclass(frozen=True)
class Reroute:
    """Not on this channel: the message goes out on `channel` with `content` instead (pending
    again on that channel's queue, its own checks still to pass), with the reason recorded."""

    channel: str
    content: dict[str, Any]
    reason: str


Verdict = Suppress | Defer | Reroute | None
Check = Callable[[SendContext], Verdict]
