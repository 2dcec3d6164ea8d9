"""`send: {channel: preferred, message: …}`: which channel the person gets the message on.

One segment decides, by the `channels` it lists, in order: the journey's trigger segment when
the trip started on one that lists channels (the journey is about that segment, whether the
person entered or left it), else the first of the person's segments that lists channels, in
the segments directory's order (segment files by name, then the lifecycle stage). Only that
segment's list is tried: `channels: [sms]` means SMS only, not SMS then whatever another
segment lists. The first of its channels the message has a variant for, and that the person
has an address for and consent on (as the send-time check reads it, for the journey's kind),
is taken; the note says which, and why each one before it was passed over.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from app.journeys.definition import PREFERRED, Journey
from app.journeys.templates import Versions
from app.profiles.consent import unreachable
from app.segments import catalog
from app.segments.definition import Segment


@dataclass(frozen=True)
class Choice:
    """`channel` None: none would do; `first` is then the channel the row is recorded on.
    `note` goes into the delivery's history."""

    channel: str | None
    first: str
    note: str


def _deciding(session: Session, journey: Journey, profile: Mapping[str, Any]) -> Segment | None:
    definitions = catalog.current(session)
    trigger = definitions.segment(journey.trigger.segment) if journey.trigger.segment else None
    if trigger is not None and trigger.channels:
        return trigger
    stage = profile.get("lifecycle_stage")
    member_of = {*(profile.get("segments") or ()), *([stage] if stage else [])}
    return definitions.first_listing_channels(member_of)


def choose(
    session: Session,
    journey: Journey,
    profile: Mapping[str, Any],
    message: str,
    variants: Mapping[str, Versions],
) -> Choice:
    """The channel of the person's deciding segment the message can go out on now."""
    segment = _deciding(session, journey, profile)
    if segment is None:
        return Choice(
            None,
            next(iter(variants)),
            f"channel {PREFERRED}: no channel, none of the person's segments lists channels",
        )
    listed = f"segment {segment.id}: {', '.join(segment.channels)}"
    transactional = journey.kind == "transactional"
    passed: list[str] = []
    for channel in segment.channels:
        reason = (
            unreachable(channel, profile, transactional=transactional)
            if channel in variants
            else f"message {message} has no {channel} variant"
        )
        if reason is None:
            return Choice(
                channel,
                channel,
                f"channel {PREFERRED} → {channel} ({'; '.join([listed, *passed])})",
            )
        passed.append(f"{channel} skipped: {reason}")
    return Choice(
        None,
        segment.channels[0],
        f"channel {PREFERRED}: no channel would do ({'; '.join([listed, *passed])})",
    )
