"""Retries kept in the database: back-off with jitter, Retry-After, dead letters, replay.

Twilio's local stand-in answers 5xx/429 the way Twilio does. The clock is manual: a retry is due
when the row's `next_attempt_at` says so, whatever the broker does with its delayed message, so
the tests drop those messages (`broker.flush_all()`: a lost delayed message) and let the
sweeper hand the row over, which is the path that must never lose a delivery.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from typer.testing import CliRunner

from app.cli import app as cli
from app.clock import ManualClock
from app.delivery import models, retries
from app.delivery.service import channels
from app.journeys import catalog
from app.settings import Settings, get_settings
from app.sweeper import sweep_deliveries
from app.tasks import broker
from tests.helpers import REPO, Pipeline, bearer, ingest, newsletter_signup, only_delivery
from tests.providers.twilio import TwilioServer, twilio_error

SWEEP = timedelta(seconds=30)


def opted_in_signup() -> list[dict[str, Any]]:
    """The welcome SMS journey, for someone who explicitly opted in to SMS."""
    identify, subscribe = newsletter_signup("ada")
    identify["traits"]["sms_opt_in"] = True
    return [identify, subscribe]


def fast_retries(env: pytest.MonkeyPatch, sms_attempts: int = 3) -> None:
    env.setenv("CARILLON_RETRY_BASE_SECONDS", "1")
    env.setenv("CARILLON_RETRY_MAX_SECONDS", "1")
    env.setenv("CARILLON_DELIVERY_ATTEMPTS_PER_CHANNEL", f"email=7,sms={sms_attempts}")
    get_settings.cache_clear()
    channels.cache_clear()


def lose_delayed_messages_and_sweep(clock: ManualClock, pipeline: Pipeline, by: timedelta) -> int:
    """Drop the broker's delayed retry, move the clock on, and let the sweeper hand rows over."""
    pipeline.worker.pause()
    broker.flush_all()
    pipeline.worker.resume()
    clock.advance(by)
    swept = sweep_deliveries(SWEEP)
    pipeline.drain()
    return swept


@pytest.fixture
def sms(
    settings_env: pytest.MonkeyPatch, twilio: TwilioServer, manual_clock: ManualClock
) -> TwilioServer:
    fast_retries(settings_env)
    catalog.sync_directory(REPO / "journeys")
    return twilio


# --------------------------------------------------------------------------- the policy itself


def test_backoff_grows_exponentially_with_full_jitter_and_a_ceiling() -> None:
    settings = Settings(retry_base_seconds=2, retry_max_seconds=60)
    rng = random.Random(5)
    for attempt, ceiling in [(1, 2), (2, 4), (3, 8), (4, 16), (5, 32), (6, 60), (12, 60)]:
        waits = [retries.backoff_seconds(settings, attempt, rng=rng) for _ in range(200)]
        assert all(0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling * 0.8  # jittered over the whole range, not a constant
        assert min(waits) < ceiling * 0.2


def test_retry_after_is_a_floor_under_the_jitter() -> None:
    settings = Settings(retry_base_seconds=2, retry_max_seconds=60)
    assert retries.backoff_seconds(settings, 1, retry_after=30) == 30
    assert retries.backoff_seconds(settings, 1, retry_after=0) <= 2


def test_attempts_are_configured_per_channel() -> None:
    """Named: as configured; else the channel's own (the webhook's 8); else the maximum."""
    settings = Settings(delivery_max_attempts=4, delivery_attempts_per_channel="sms=2, email=9")
    channels = ("sms", "email", "meta_audience", "webhook")
    assert [retries.max_attempts(settings, c) for c in channels] == [2, 9, 4, 8]
    webhook_named = Settings(delivery_attempts_per_channel="webhook=3")
    assert retries.max_attempts(webhook_named, "webhook") == 3


@pytest.mark.parametrize("value", ["sms", "sms=0", "sms=-2", "sms=three", "=4", "sms=2.5"])
def test_a_bad_attempts_setting_is_refused_at_start(value: str) -> None:
    with pytest.raises(ValidationError, match="CARILLON_DELIVERY_ATTEMPTS_PER_CHANNEL"):
        Settings(delivery_attempts_per_channel=value)


# --------------------------------------------------------------------------- through the worker


def test_server_errors_are_retried_until_sent_once(
    sms: TwilioServer, pipeline: Pipeline, manual_clock: ManualClock
) -> None:
    sms.fail_next(503, twilio_error(503, 20500, "Service unavailable"), times=2)
    ingest(*opted_in_signup())
    pipeline.drain()

    first = only_delivery()
    assert (first.status, first.attempts, first.status_code) == (models.PENDING, 1, 503)
    assert "Service unavailable" in (first.error or "")
    assert first.next_attempt_at is not None
    assert manual_clock.now() < first.next_attempt_at <= manual_clock.now() + timedelta(seconds=1)
    assert len(sms.requests) == 1

    # Not due yet: neither a stray message nor the sweeper sends it early.
    assert sweep_deliveries(timedelta(0)) == 0

    assert lose_delayed_messages_and_sweep(manual_clock, pipeline, timedelta(seconds=1)) == 1
    second = only_delivery()
    assert (second.status, second.attempts) == (models.PENDING, 2)
    assert lose_delayed_messages_and_sweep(manual_clock, pipeline, timedelta(seconds=1)) == 1

    done = only_delivery()
    assert (done.status, done.attempts, done.error) == (models.SENT, 3, None)
    assert done.next_attempt_at is None or done.next_attempt_at <= manual_clock.now()
    assert len(sms.requests) == 3
    # Done is done.
    assert lose_delayed_messages_and_sweep(manual_clock, pipeline, timedelta(hours=1)) == 0
    assert len(sms.requests) == 3


def test_the_delayed_message_alone_brings_the_retry_back(
    settings_env: pytest.MonkeyPatch, twilio: TwilioServer, pipeline: Pipeline
) -> None:
    """Real clock, no sweeper: the job re-enqueued with a delay makes the next attempts."""
    fast_retries(settings_env)
    settings_env.setenv("CARILLON_RETRY_BASE_SECONDS", "0.2")
    settings_env.setenv("CARILLON_RETRY_MAX_SECONDS", "0.2")
    get_settings.cache_clear()
    catalog.sync_directory(REPO / "journeys")
    twilio.fail_next(500, twilio_error(500, 20500, "Internal error"), times=2)
    ingest(*opted_in_signup())
    pipeline.drain()  # joins the delayed queue too: both retries happen in here
    done = only_delivery()
    assert (done.status, done.attempts) == (models.SENT, 3)
    assert len(twilio.requests) == 3


def test_a_permanent_refusal_fails_at_once(
    sms: TwilioServer, pipeline: Pipeline, manual_clock: ManualClock
) -> None:
    sms.fail_next(400, twilio_error(400, 21211, "Invalid 'To' Phone Number"))
    ingest(*opted_in_signup())
    pipeline.drain()
    row = only_delivery()
    assert (row.status, row.attempts, row.next_attempt_at) == (models.FAILED, 1, None)
    assert lose_delayed_messages_and_sweep(manual_clock, pipeline, timedelta(hours=1)) == 0
    assert len(sms.requests) == 1


def test_exhausted_retries_are_a_dead_letter_listed_and_replayed_once(
    settings_env: pytest.MonkeyPatch,
    sms: TwilioServer,
    pipeline: Pipeline,
    manual_clock: ManualClock,
    client: TestClient,
    admin: str,
) -> None:
    fast_retries(settings_env, sms_attempts=2)
    sms.fail_next(502, twilio_error(502, 20500, "first gateway error"))
    sms.fail_next(503, twilio_error(503, 20500, "last gateway error"))
    ingest(*opted_in_signup())
    pipeline.drain()
    assert lose_delayed_messages_and_sweep(manual_clock, pipeline, timedelta(seconds=1)) == 1

    dead = only_delivery()
    assert (dead.status, dead.attempts, dead.status_code) == (models.DEAD, 2, 503)
    assert "last gateway error" in (dead.error or "")
    assert len(sms.requests) == 2
    # Dead stays dead: nothing sweeps it.
    assert lose_delayed_messages_and_sweep(manual_clock, pipeline, timedelta(days=1)) == 0
    assert len(sms.requests) == 2

    [listed] = client.get("/ops/dead-letters", headers=bearer()).json()
    assert (listed["id"], listed["status"]) == (dead.id, "dead")

    runner = CliRunner()
    shown = runner.invoke(cli, ["deliveries", "dead"])
    assert shown.exit_code == 0, shown.output
    assert f"{dead.id}\tsms\tdead\tattempts=2" in shown.output
    assert "last gateway error" in shown.output

    pipeline.worker.pause()
    replayed = runner.invoke(cli, ["deliveries", "replay", "--id", str(dead.id)])
    # What the command prints (stdout); its log lines go to stderr.
    assert (replayed.exit_code, replayed.stdout) == (0, f"{dead.id}\treplayed\n")
    again = runner.invoke(cli, ["deliveries", "replay", "--all"])  # nothing dead any more
    assert (again.exit_code, again.stdout) == (0, "")
    twice = runner.invoke(cli, ["deliveries", "replay", "--id", str(dead.id)])
    assert (twice.exit_code, twice.stdout) == (0, f"{dead.id}\talready pending\n")
    pipeline.worker.resume()
    pipeline.drain()

    sent = only_delivery()
    assert (sent.status, sent.attempts) == (models.SENT, 1)  # a fresh budget after replay
    assert len(sms.requests) == 3  # one more call for three replay requests
    assert runner.invoke(cli, ["deliveries", "dead"]).stdout == "No dead letters.\n"


def test_replay_needs_ids_or_all() -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["deliveries", "replay"]).exit_code == 2
    assert runner.invoke(cli, ["deliveries", "replay", "--all", "--id", "1"]).exit_code == 2
    missing = runner.invoke(cli, ["deliveries", "replay", "--id", "999999"])
    assert missing.exit_code == 1
    assert "delivery 999999 does not exist" in missing.output
