"""When an event happened, as far as Carillon believes the client's clock.

Traits converge to the value of the newest event, and consent is a trait, so an event time is
a claim of authority: one dated in the year 9999 would win against everything after it. The
rules, in Segment's vocabulary (`originalTimestamp` the client's clock when the call was made,
`sentAt` the client's clock when it was sent, `receivedAt` Carillon's clock on arrival):

- Clock skew is corrected the way Segment corrects it: when the client says when it sent the
  call, the event time is its `timestamp` (or `originalTimestamp`) moved by
  `receivedAt - sentAt`, so a device whose clock is a day off still dates its events right.
- Future: an event time more than `FUTURE_TOLERANCE` after `receivedAt` is clamped to
  `receivedAt`. Clamped, not refused: the event is real and happened no later than its
  arrival, and a 400 would make the SDK drop the whole batch around it. The tolerance keeps
  the order of a batch from a clock a little ahead (and of API replicas a little apart).
- Past: a time before `EARLIEST` (1970-01-01T00:00:00Z) is refused with a 400 naming the field.
  Such a value is not a clock reading but a zeroed or default date (0001-01-01 of .NET's
  `DateTime.MinValue` and Go's zero time); any time to guess instead would be invented.
- A time whose offset puts it outside the years 1-9999 in UTC (`0001-01-01T00:00:00+14:00`,
  `9999-12-31T23:59:59-12:00`) is taken as the earliest or latest time there is, so the
  rules above apply to it and no datetime arithmetic can overflow.

The client's own values stay in the stored payload (`originalTimestamp`, `sentAt`); the
event's `timestamp` is the corrected one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
FUTURE_TOLERANCE = timedelta(minutes=5)


class TooEarly(ValueError):
    """The corrected event time falls before `EARLIEST`."""


def as_utc(value: datetime) -> datetime:
    """`value` in UTC, saturating at the ends of datetime's range instead of overflowing."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        offset = value.utcoffset() or timedelta(0)
        # A negative offset is behind UTC: the same wall time is later in UTC.
        edge = datetime.max if offset < timedelta(0) else datetime.min
        return edge.replace(tzinfo=UTC)


def too_early(value: datetime) -> str | None:
    """Why a client's time is refused, or None."""
    if as_utc(value) < EARLIEST:
        return f"{value.isoformat()} is before {EARLIEST.isoformat()}, the earliest event time"
    return None


def event_time(
    claimed: datetime | None, sent_at: datetime | None, received_at: datetime
) -> datetime:
    """The event's time: `claimed` corrected by `received_at - sent_at`, clamped to
    `received_at` when beyond the tolerance; TooEarly when the correction lands before 1970."""
    if claimed is None:
        return received_at
    # Offsets from EARLIEST are timedeltas (range: millions of years): no step can overflow.
    offset = as_utc(claimed) - EARLIEST
    if sent_at is not None:
        offset += received_at - as_utc(sent_at)
    if offset < timedelta(0):
        raise TooEarly(
            f"moves the event time before {EARLIEST.isoformat()}: it does not read the clock "
            "that dated the event"
        )
    if offset > received_at + FUTURE_TOLERANCE - EARLIEST:
        return received_at
    return EARLIEST + offset
