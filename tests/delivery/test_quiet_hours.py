"""Quiet hours: a marketing message due while the person's own clock shows the quiet window is
deferred to the window's end (never dropped), across midnight and DST changes; transactional
journeys are exempt; a bad setting stops the start with a clear error."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from app.clock import ManualClock
from app.db import session_scope
from app.delivery import models
from app.delivery.checks.quiet_hours import next_allowed, window_of
from app.ops import story
from app.settings import QuietHours, Settings
from app.sweeper import sweep_deliveries
from app.tasks import broker
from channels import registry
from tests.delivery.conftest import EMAIL, SMS, journey_yaml, refusal_at_start
from tests.helpers import (
    Pipeline,
    configure,
    deliver,
    deliveries,
    held,
    load,
    person,
    route,
    track_now,
)
from tests.providers.twilio import TwilioServer

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
NIGHT = QuietHours(time(21), time(8))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# --------------------------------------------------------------------------- the window itself


@pytest.mark.parametrize(
    ("now", "zone", "expected"),
    [
        # Paris in winter (UTC+1): 21:30 local → 08:00 local the next morning.
        (utc(2026, 11, 2, 20, 30), PARIS, utc(2026, 11, 3, 7, 0)),
        # After midnight, still quiet: the same morning.
        (utc(2026, 11, 3, 2, 0), PARIS, utc(2026, 11, 3, 7, 0)),
        (utc(2026, 11, 3, 6, 59), PARIS, utc(2026, 11, 3, 7, 0)),
        # The edges: 08:00 is allowed, 20:59 too, 21:00 is quiet.
        (utc(2026, 11, 3, 7, 0), PARIS, None),
        (utc(2026, 11, 2, 19, 59), PARIS, None),
        (utc(2026, 11, 2, 20, 0), PARIS, utc(2026, 11, 3, 7, 0)),
        # Spring forward in Paris (29 March 2026): 08:00 is already summer time (UTC+2).
        (utc(2026, 3, 28, 21, 0), PARIS, utc(2026, 3, 29, 6, 0)),
        # Fall back in Paris (25 October 2026): 08:00 is winter time again (UTC+1).
        (utc(2026, 10, 24, 20, 0), PARIS, utc(2026, 10, 25, 7, 0)),
        # New York (UTC-5 / UTC-4): spring forward on 8 March, fall back on 1 November 2026.
        (utc(2026, 3, 8, 3, 0), NEW_YORK, utc(2026, 3, 8, 12, 0)),
        (utc(2026, 11, 1, 3, 0), NEW_YORK, utc(2026, 11, 1, 13, 0)),
        # 21:30 in New York is 02:30 UTC the next day: the window is the person's, not UTC's.
        (utc(2026, 11, 3, 2, 30), NEW_YORK, utc(2026, 11, 3, 13, 0)),
        (utc(2026, 11, 2, 20, 30), NEW_YORK, None),  # 15:30 there
    ],
)
def test_overnight_window_ends_at_the_next_local_morning(
    now: datetime, zone: ZoneInfo, expected: datetime | None
) -> None:
    assert next_allowed(NIGHT, now, zone) == expected


def test_a_window_ending_at_a_time_dst_skips_ends_when_the_clock_jumps() -> None:
    """01:00-02:30 in Paris on 29 March 2026: 02:30 never shows; at 02:00 CET the clock jumps
    to 03:00 CEST (01:00 UTC), which is past the window."""
    window = QuietHours(time(1), time(2, 30))
    assert next_allowed(window, utc(2026, 3, 29, 0, 10), PARIS) == utc(2026, 3, 29, 1, 0)
    assert next_allowed(window, utc(2026, 3, 29, 1, 0), PARIS) is None


def test_a_window_ending_at_a_time_dst_repeats_ends_at_its_next_occurrence() -> None:
    """On 25 October 2026 Paris shows 02:00-03:00 twice (CEST, then CET)."""
    window = QuietHours(time(1), time(2, 30))
    first_pass = utc(2026, 10, 25, 0, 10)  # 02:10 CEST
    assert next_allowed(window, first_pass, PARIS) == utc(2026, 10, 25, 0, 30)  # 02:30 CEST
    second_pass = utc(2026, 10, 25, 1, 10)  # 02:10 CET, the clock went back
    assert next_allowed(window, second_pass, PARIS) == utc(2026, 10, 25, 1, 30)  # 02:30 CET


def test_a_daytime_window_does_not_cross_midnight() -> None:
    lunch = QuietHours(time(12), time(14))
    assert next_allowed(lunch, utc(2026, 6, 1, 10, 30), PARIS) == utc(2026, 6, 1, 12, 0)
    assert next_allowed(lunch, utc(2026, 6, 1, 9, 59), PARIS) is None
    assert next_allowed(lunch, utc(2026, 6, 1, 20, 0), PARIS) is None


# --------------------------------------------------------------------------- settings


def test_by_default_only_sms_has_quiet_hours() -> None:
    """Unset, each channel keeps its spec's own window: only SMS declares one."""
    assert Settings.model_fields["quiet_hours"].default is None
    unset = Settings(quiet_hours=None)
    assert {name: window_of(unset, name) for name in registry.names()} == {
        name: NIGHT if name == "sms" else None for name in registry.names()
    }
    assert Settings(quiet_hours="sms=21:00-08:00").quiet_hours_by_channel() == {"sms": NIGHT}
    assert window_of(Settings(quiet_hours="email=22:00-07:00"), "sms") is None  # named: only those
    windows = Settings(quiet_hours="sms=21:00-08:00, email=22:00-07:00").quiet_hours_by_channel()
    assert {channel: str(w) for channel, w in windows.items()} == {
        "sms": "21:00-08:00",
        "email": "22:00-07:00",
    }
    assert Settings(quiet_hours="").quiet_hours_by_channel() == {}


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("sms=9pm-8am", "should be channel=value, e.g. email=21:00-08:00 (local"),
        ("sms=21:00", "should be channel=value"),
        ("sms=21:00-21:00", "start and end differ"),
        ("sms=24:00-08:00", "should be channel=value"),
        ("21:00-08:00", "should be channel=value"),
        (
            "smss=21:00-08:00",
            "unknown channel 'smss'; one of: email, meta_audience, meta_capi, sms, "
            "webhook, whatsapp",
        ),
    ],
)
def test_a_bad_setting_is_refused_at_start(
    settings_env: pytest.MonkeyPatch, value: str, says: str
) -> None:
    assert says in refusal_at_start(settings_env, "CARILLON_QUIET_HOURS", value)


# --------------------------------------------------------------------------- at send time


@pytest.fixture
def evening_in_paris(manual_clock: ManualClock) -> ManualClock:
    manual_clock.advance(utc(2026, 11, 2, 20, 30) - manual_clock.now())  # 21:30 in Paris
    return manual_clock


def test_a_deferred_sms_goes_out_at_the_allowed_minute_through_the_worker(
    settings_env: pytest.MonkeyPatch,
    twilio: TwilioServer,
    pipeline: Pipeline,
    evening_in_paris: ManualClock,
    tmp_path: Path,
) -> None:
    configure(settings_env, quiet_hours="sms=21:00-08:00")
    load(tmp_path, journey_yaml("welcome", "Newsletter Subscribed", SMS))
    pipeline.worker.pause()  # this night's attempt is made here, the morning's by the worker
    route(
        person("lea", timezone="Europe/Paris", sms_opt_in=True),
        track_now("lea", "Newsletter Subscribed"),
    )
    [planned] = deliveries()
    deferred = deliver(planned.id)

    morning = utc(2026, 11, 3, 7, 0)  # 08:00 in Paris
    assert (deferred.status, deferred.attempts, deferred.next_attempt_at) == (
        models.PENDING,
        0,  # a deferral is not an attempt: it does not use up the channel's retries
        morning,
    )
    reason = "quiet hours 21:00-08:00 Europe/Paris"
    assert reason in (deferred.error or "")
    [(kind, detail)] = held(planned.id)
    assert kind == "deferred" and reason in (detail or "")
    assert twilio.messages == []

    broker.flush_all()  # the delayed message is lost: the sweeper must bring the row back
    pipeline.worker.resume()
    evening_in_paris.advance(morning - timedelta(minutes=1) - evening_in_paris.now())
    assert sweep_deliveries(timedelta(seconds=30)) == 0  # 07:59 in Paris: not yet
    pipeline.drain()
    assert twilio.messages == []

    evening_in_paris.advance(timedelta(minutes=1))
    assert sweep_deliveries(timedelta(seconds=30)) == 1
    pipeline.drain()
    [sent] = deliveries()
    assert (sent.status, sent.attempts, sent.sent_at) == (models.SENT, 1, morning)
    assert len(twilio.messages) == 1

    with session_scope() as session:
        told = story.tell(session, sent.id)
    whats = [step.what for step in told.steps]
    assert "deferred at send time" in whats
    assert story.POLICY_NOTE not in told.notes


def test_the_default_timezone_applies_without_a_valid_timezone_trait(
    settings_env: pytest.MonkeyPatch, evening_in_paris: ManualClock, tmp_path: Path
) -> None:
    configure(settings_env, quiet_hours="sms=21:00-08:00", default_timezone="America/New_York")
    load(tmp_path, journey_yaml("welcome", "Newsletter Subscribed", SMS))
    route(
        person("ny", sms_opt_in=True),
        person("bad", timezone="Mars/Olympus_Mons", sms_opt_in=True),
        person("lea", timezone="Europe/Paris", sms_opt_in=True),
        track_now("ny", "Newsletter Subscribed"),
        track_now("bad", "Newsletter Subscribed"),
        track_now("lea", "Newsletter Subscribed"),
    )
    outcomes = [deliver(d.id) for d in deliveries()]
    # 15:30 in New York: both go; 21:30 in Paris: deferred.
    assert [d.status for d in outcomes] == [models.DRY_RUN, models.DRY_RUN, models.PENDING]


def test_email_has_no_quiet_hours_unless_configured(
    settings_env: pytest.MonkeyPatch, evening_in_paris: ManualClock, tmp_path: Path
) -> None:
    configure(settings_env, quiet_hours="sms=21:00-08:00")
    load(tmp_path, journey_yaml("news", "Subscribed", EMAIL))
    route(person("lea", timezone="Europe/Paris"), track_now("lea", "Subscribed"))
    [planned] = deliveries()
    assert deliver(planned.id).status == models.DRY_RUN

    configure(settings_env, quiet_hours="sms=21:00-08:00,email=21:15-07:00")
    route(track_now("lea", "Subscribed"))
    second = deliveries()[-1]
    deferred = deliver(second.id)
    assert deferred.status == models.PENDING
    assert deferred.next_attempt_at == utc(2026, 11, 3, 6, 0)  # 07:00 in Paris
    assert "quiet hours 21:15-07:00 Europe/Paris" in (deferred.error or "")


def test_transactional_journeys_are_exempt(
    settings_env: pytest.MonkeyPatch, evening_in_paris: ManualClock, tmp_path: Path
) -> None:
    configure(settings_env, quiet_hours="sms=21:00-08:00")
    load(
        tmp_path,
        journey_yaml("code", "Login Requested", SMS, "kind: transactional\n"),
        journey_yaml("promo", "Login Requested", SMS, "kind: marketing\n"),
    )
    route(
        person("lea", timezone="Europe/Paris", sms_opt_in=True), track_now("lea", "Login Requested")
    )
    outcomes = {d.journey_id: deliver(d.id).status for d in deliveries()}
    assert outcomes == {"code": models.DRY_RUN, "promo": models.PENDING}


def test_consent_comes_before_quiet_hours(
    settings_env: pytest.MonkeyPatch, evening_in_paris: ManualClock, tmp_path: Path
) -> None:
    """Nobody who said no is merely deferred: the message is suppressed, not held till 08:00."""
    configure(settings_env, quiet_hours="sms=21:00-08:00")
    load(tmp_path, journey_yaml("welcome", "Newsletter Subscribed", SMS))
    route(person("lea", timezone="Europe/Paris"), track_now("lea", "Newsletter Subscribed"))
    [planned] = deliveries()
    assert deliver(planned.id).status == models.SUPPRESSED
