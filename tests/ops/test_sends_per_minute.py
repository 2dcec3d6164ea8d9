"""Sends per minute over the last hour (the dashboard's chart), counted from deliveries'
`sent_at` on a manual clock: each message in the minute it went out, every channel listed,
nothing older than the hour."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from app import clock
from app.clock import ManualClock
from app.db import session_scope
from app.ops import sends
from channels import registry
from tests.helpers import Providers, deliveries, run_ab_test

PEOPLE = [f"p{i:02}" for i in range(20)]


def per_minute() -> sends.SendsPerMinute:
    with session_scope() as session:
        return sends.per_minute(session, clock.now())


def test_sends_land_in_their_minute_and_leave_after_an_hour(
    providers: Providers, manual_clock: ManualClock, tmp_path: Path
) -> None:
    run_ab_test(tmp_path, manual_clock, PEOPLE, [], send=True)  # sent at 10:00:00, now 10:30
    sent = sum(1 for d in deliveries() if d.status == "sent")
    assert sent > 0
    rates = per_minute()
    email = rates.counts["email"]
    assert list(rates.counts) == list(registry.names())  # every channel, sent or not
    assert len(email) == sends.MINUTES
    assert rates.start == manual_clock.now() - timedelta(minutes=59)  # 09:31, now 10:30
    assert email[59 - 30] == sent and sum(email) == sent  # 30 minutes ago, one minute
    assert all(not any(n) for channel, n in rates.counts.items() if channel != "email")
    manual_clock.advance(timedelta(minutes=29, seconds=59))  # 10:59:59: still in the hour
    assert per_minute().counts["email"][0] == sent
    manual_clock.advance(timedelta(seconds=1))  # 11:00: the 10:00 minute has left the hour
    assert per_minute().total == 0


def test_dry_runs_count_as_sends(
    no_credentials: Providers, manual_clock: ManualClock, tmp_path: Path
) -> None:
    """On a machine without provider keys the chart still shows the pipeline moving."""
    run_ab_test(tmp_path, manual_clock, PEOPLE, [], send=True)
    dry = sum(1 for d in deliveries() if d.status == "dry_run")
    assert dry > 0 and per_minute().counts["email"][29] == dry
