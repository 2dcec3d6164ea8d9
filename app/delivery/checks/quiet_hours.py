"""No marketing message while the person is likely asleep: quiet hours in their own timezone.

The window is local wall-clock time (CARILLON_QUIET_HOURS, default `sms=21:00-08:00`), so it
follows the person through DST changes. A send due inside it is deferred to the first minute the
person's clock shows the window's end, never dropped. Transactional messages are exempt.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from app.delivery.checks.kind import is_transactional
from app.delivery.checks.verdicts import Defer, SendContext, Verdict
from app.profiles.timezone import timezone_of
from app.settings import QuietHours, Settings
from channels import registry

_MINUTE = timedelta(minutes=1)


def covers(window: QuietHours, wall: time) -> bool:
    if window.start < window.end:
        return window.start <= wall < window.end
    return wall >= window.start or wall < window.end  # across midnight


def next_allowed(window: QuietHours, now: datetime, zone: ZoneInfo) -> datetime | None:
    """The first instant after `now` outside `window` in `zone`, or None if `now` is outside."""
    local = now.astimezone(zone)
    wall = local.time().replace(tzinfo=None)
    if not covers(window, wall):
        return None
    ends_tomorrow = window.start > window.end and wall >= window.start
    day = local.date() + timedelta(days=1 if ends_tomorrow else 0)
    return clock_reaches(day, window.end, zone, now).astimezone(now.tzinfo)


def clock_reaches(day: date, wall: time, zone: ZoneInfo, after: datetime) -> datetime:
    """When the clock in `zone` first shows `wall` on `day`, after `after`.

    A time DST repeats (autumn) is taken at its first occurrence still to come. A time DST skips
    (spring) is reached when the clock jumps over it, e.g. 02:30 in Paris on the last Sunday of
    March is reached at 03:00 CEST."""
    naive = datetime.combine(day, wall)
    instants = [naive.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1)]
    occurrences = [at for at in instants if at.astimezone(zone).replace(tzinfo=None) == naive]
    if occurrences:
        return next((at for at in occurrences if at > after), occurrences[-1])
    # Skipped: fold=1 reads it with the offset after the jump, an instant just before the jump.
    at = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    while at.astimezone(zone).replace(tzinfo=None) < naive:
        at += _MINUTE
    return at


def window_of(settings: Settings, channel: str) -> QuietHours | None:
    """CARILLON_QUIET_HOURS when set (a channel it does not name has none), else the
    channel's own default."""
    configured = settings.quiet_hours_by_channel()
    if configured is None:
        return registry.spec(channel).quiet_hours
    return configured.get(channel)


def check(context: SendContext) -> Verdict:
    window = window_of(context.settings, context.delivery.channel)
    if window is None:
        return None
    if is_transactional(context.session, context.delivery):
        return None
    zone = timezone_of(context.delivery.profile_id, context.traits)
    until = next_allowed(window, context.now, zone)
    if until is None:
        return None
    return Defer(until, f"quiet hours {window} {zone.key}")
