"""Provider rate limits: the token bucket on both back-ends, its use by the delivery service,
and the limit held by concurrent workers as the provider sees it.

The bucket tests let time pass without sleeping: a ManualClock drives the in-process bucket;
the Redis bucket is on Redis's own clock, so its stored timestamps are moved back instead.
The Redis back-end is exercised whenever CARILLON_REDIS_URL is set (the PostgreSQL + Redis pass).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import select
from typer.testing import CliRunner

from app.cli import app as cli
from app.clock import ManualClock
from app.db import session_scope
from app.delivery import models, rate_limit, service
from app.delivery.models import Delivery, DeliveryEvent
from app.delivery.rate_limit import KEY_PREFIX, Buckets, LocalBuckets, RateLimiter, RedisBuckets
from app.delivery.sender import PutOff, Sender, late_tolerance
from app.journeys import catalog
from app.main import create_app
from app.ops import queues
from app.settings import Settings, get_settings
from app.tasks import broker
from channels.base import (
    Message,
    Outcome,
    Recipient,
    SendResult,
    before_departure,
    departure_gate,
)
from channels.registry import build_channels
from tests.helpers import (
    SHIPPED,
    TOKEN,
    alice,
    at,
    bearer,
    configure,
    deliveries,
    ingest,
    newsletter,
    process,
)
from tests.processes import SERVE, Process, running_carillon, wait_until
from tests.providers.server import unused_port
from tests.providers.twilio import TwilioServer, twilio_error

REDIS_URL = get_settings().redis_url
BACKENDS = ["local", *(["redis"] if REDIS_URL else [])]
PRODUCTION = REDIS_URL is not None and not get_settings().is_sqlite
KEY = f"{KEY_PREFIX}:sms:test"
ISSUED = 1 - rate_limit.HEADROOM  # tokens are issued that far under the configured rate


def _forget_buckets() -> None:
    if REDIS_URL:
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(f"{KEY_PREFIX}:*"):
            client.delete(key)


@pytest.fixture(autouse=True)
def fresh_buckets() -> Iterator[None]:
    _forget_buckets()
    yield
    _forget_buckets()


class Bench:
    """A bucket back-end and a way to let its time pass."""

    def __init__(self, kind: str, manual_clock: ManualClock) -> None:
        self.kind, self.clock = kind, manual_clock
        self.client = redis.Redis.from_url(REDIS_URL) if kind == "redis" and REDIS_URL else None
        self.buckets: Buckets = RedisBuckets(self.client) if self.client else LocalBuckets()

    def pass_time(self, seconds: float, key: str = KEY) -> None:
        if self.client is None:
            self.clock.advance(timedelta(seconds=seconds))
            return
        for field in ("at", "lowered_until"):  # the bucket's past, moved back: time passed
            self.client.hincrbyfloat(key, field, -seconds)


# Real time passes between two calls on Redis's clock (none on the ManualClock): it can only
# shorten a wait and add tokens, so the checks allow that much, in that direction only.
SLACK = 0.05


def wait_is(actual: float, expected: float) -> None:
    assert expected - SLACK <= actual <= expected + 1e-6


def tokens_are(actual: float, expected: float, rate: float) -> None:
    assert expected - 1e-6 <= actual <= expected + SLACK * rate


@pytest.fixture(params=BACKENDS)
def bench(request: pytest.FixtureRequest, manual_clock: ManualClock) -> Bench:
    return Bench(request.param, manual_clock)


def test_a_fresh_bucket_gives_one_token_then_reserves_turns_in_order(bench: Bench) -> None:
    first, second, third = (bench.buckets.take(KEY, 20.0, 1.0) for _ in range(3))
    assert (first.granted, first.wait_seconds) == (True, 0.0)
    # No burst beyond one token: the next callers get turns 1/20 s apart, reserved.
    assert second.granted and third.granted
    wait_is(second.wait_seconds, 0.05)
    wait_is(third.wait_seconds, 0.10)
    tokens_are(bench.buckets.read(KEY, 20.0).tokens, -2, 20.0)


def test_the_bucket_refills_with_elapsed_time_up_to_one_token(bench: Bench) -> None:
    assert bench.buckets.take(KEY, 20.0, 1.0).wait_seconds == 0
    bench.pass_time(0.5)  # ten tokens' worth of time, but the bucket holds one
    assert bench.buckets.read(KEY, 20.0).tokens == pytest.approx(1.0)
    assert bench.buckets.take(KEY, 20.0, 1.0).wait_seconds == 0
    bench.pass_time(0.025)  # half a token
    wait_is(bench.buckets.take(KEY, 20.0, 1.0).wait_seconds, 0.025)


def test_a_turn_beyond_the_bound_is_refused_and_reserves_nothing(bench: Bench) -> None:
    for expected in (0.0, 1.0, 2.0):
        wait_is(bench.buckets.take(KEY, 1.0, 2.0).wait_seconds, expected)
    refused = bench.buckets.take(KEY, 1.0, 2.0)
    assert not refused.granted
    wait_is(refused.wait_seconds, 1.0)  # when a turn will be within 2 s
    tokens_are(bench.buckets.read(KEY, 1.0).tokens, -2, 1.0)  # nothing reserved


def test_a_429_halves_the_rate_for_a_while_then_it_comes_back(bench: Bench) -> None:
    bench.buckets.take(KEY, 1.0, 5.0)
    bench.buckets.take(KEY, 1.0, 5.0)  # one turn reserved: tokens -1
    bench.buckets.lower(KEY, 1.0, 1.0)
    lowered = bench.buckets.read(KEY, 1.0)
    assert lowered.rate_per_second == 0.5 and lowered.lowered_until is not None
    bench.pass_time(1.5)  # 1 s at half rate, then 0.5 s at the full rate: -1 + 0.5 + 0.5
    after = bench.buckets.read(KEY, 1.0)
    tokens_are(after.tokens, 0.0, 1.0)
    assert (after.rate_per_second, after.lowered_until) == (1.0, None)


def test_a_429_empties_the_bucket_so_the_next_turn_comes_at_the_lowered_rate(
    bench: Bench,
) -> None:
    bench.buckets.lower(KEY, 20.0, 60.0)  # the bucket was full: the 429 says otherwise
    wait_is(bench.buckets.take(KEY, 20.0, 1.0).wait_seconds, 0.1)  # 1 token at 10/s


def _settings(env: pytest.MonkeyPatch, twilio_account: str = "AC1") -> Settings:
    """Limits on SMS (this Twilio account) and e-mail (no credentials: a dry run, no bucket)."""
    env.setenv("TWILIO_ACCOUNT_SID", twilio_account)
    env.setenv("TWILIO_AUTH_TOKEN", "token")
    env.setenv("TWILIO_FROM_NUMBER", "+15005550006")
    env.setenv("META_ACCESS_TOKEN", "meta-token")
    get_settings.cache_clear()  # the channels read theirs again with it
    return Settings(rate_limits="sms=1/s,email=10/m", rate_limit_max_wait_seconds=0.1)


def test_each_provider_account_has_its_own_bucket(
    manual_clock: ManualClock, settings_env: pytest.MonkeyPatch
) -> None:
    shared = LocalBuckets()
    first = RateLimiter(_settings(settings_env), shared)
    other_account = RateLimiter(_settings(settings_env, "AC2"), shared)
    assert first.acquire("sms") is None
    assert other_account.acquire("sms") is None  # another account: its own token
    put_off = first.acquire("sms")  # the next turn is 1 s away, beyond the 0.1 s bound
    turn = 1 / ISSUED - 0.1  # the next token, less the bound, jittered by up to twice
    assert put_off is not None and turn <= put_off <= 2 * turn
    state = first.state("sms")
    assert state is not None and (state.limit, state.account) == ("1/s", "AC1")


def test_unlimited_or_dry_run_channels_never_wait(
    manual_clock: ManualClock, settings_env: pytest.MonkeyPatch
) -> None:
    limiter = RateLimiter(_settings(settings_env), LocalBuckets())
    # email is limited, but without a SendGrid key it runs dry: nobody to protect.
    assert [limiter.acquire("email") for _ in range(5)] == [None] * 5
    assert [limiter.acquire("meta_audience") for _ in range(5)] == [None] * 5  # not limited
    assert limiter.state("email") is None and limiter.state("meta_audience") is None


def test_only_a_429_lowers_the_rate_and_retry_after_says_for_how_long(
    manual_clock: ManualClock, settings_env: pytest.MonkeyPatch
) -> None:
    limiter = RateLimiter(_settings(settings_env), LocalBuckets())
    limiter.observe("sms", SendResult(Outcome.FAILED, status_code=503, transient=True))
    state = limiter.state("sms")
    assert state is not None and (state.rate_per_second, state.lowered_until) == (ISSUED, None)
    throttled = SendResult(Outcome.FAILED, status_code=429, transient=True, retry_after_seconds=5)
    limiter.observe("sms", throttled)
    state = limiter.state("sms")
    assert state is not None and state.rate_per_second == pytest.approx(ISSUED / 2)
    assert state.lowered_until == (manual_clock.now() + timedelta(seconds=5)).isoformat()


def test_with_redis_unreachable_the_delivery_is_put_off_and_nothing_raises(
    settings_env: pytest.MonkeyPatch,
) -> None:
    down = redis.Redis(port=unused_port(), retry=Retry(NoBackoff(), 0))  # refused at once
    limiter = RateLimiter(_settings(settings_env), RedisBuckets(down))
    put_off = limiter.acquire("sms")
    assert put_off is not None and 0.1 <= put_off <= 0.2  # the bound, jittered
    limiter.observe("sms", SendResult(Outcome.FAILED, status_code=429, transient=True))
    state = limiter.state("sms")
    assert state is not None and (state.limit, state.tokens, state.rate_per_second) == (
        "1/s",
        None,
        None,
    )


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("sms=20", "the period must be"),
        ("sms=20/x", "the period must be"),
        ("sms=20/0s", "the period must be"),
        ("sms=0/s", "whole number above zero"),
        ("sms=-1/s", "whole number above zero"),
        ("sms=1.5/s", "whole number above zero"),
        ("fax=1/s", "unknown channel 'fax'"),
        ("sms=1/s,sms=2/s", "limited twice"),
        ("20/s", "unknown channel"),
    ],
)
def test_bad_rate_limits_are_refused_at_start(value: str, problem: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(rate_limits=value)
    assert "CARILLON_RATE_LIMITS" in str(refused.value) and problem in str(refused.value)


def test_a_bound_of_zero_is_refused() -> None:
    with pytest.raises(ValidationError, match="rate_limit_max_wait_seconds"):
        Settings(rate_limit_max_wait_seconds=0)


def test_good_rate_limits_parse() -> None:
    limits = rate_limit.parse_rate_limits(" sms=20/s, email=100/10s ,meta_audience=200/h")
    assert {ch: (lim.count, lim.period_seconds) for ch, lim in limits.items()} == {
        "sms": (20, 1.0),
        "email": (100, 10.0),
        "meta_audience": (200, 3600.0),
    }


# --------------------------------------------------------------- through the delivery service


@pytest.fixture
def twilio(settings_env: pytest.MonkeyPatch) -> Iterator[TwilioServer]:
    with TwilioServer() as server:
        configure(settings_env, server.settings_overrides())
        yield server


def _history(delivery_id: int) -> list[tuple[str, str]]:
    with session_scope() as session:
        rows = session.execute(
            select(DeliveryEvent.kind, DeliveryEvent.detail)
            .where(DeliveryEvent.delivery_id == delivery_id)
            .order_by(DeliveryEvent.id)
        )
        return [(row.kind, row.detail) for row in rows]


def _planned_welcome_sms(*users: str) -> list[int]:
    """Welcome SMS planned for `users`, their queued send jobs dropped: the test makes them."""
    catalog.sync_directory(SHIPPED)
    for n, user in enumerate(users):
        person = alice()
        person["userId"], person["traits"]["phone"] = user, f"+3361111111{n}"
        process(ingest(person, newsletter(user=user)))
    broker.flush_all()
    return [d.id for d in deliveries()]


def test_without_a_turn_in_reach_the_delivery_waits_and_the_provider_is_not_called(
    settings_env: pytest.MonkeyPatch, twilio: TwilioServer
) -> None:
    configure(settings_env, {"rate_limits": "sms=1/h", "rate_limit_max_wait_seconds": 1})
    first, second = _planned_welcome_sms("alice", "bob")
    service.deliver(first)
    service.deliver(second)

    assert len(twilio.requests) == 1  # one token per hour: the second SMS must wait
    sent, waiting = deliveries()
    assert (sent.status, sent.attempts) == (models.SENT, 1)
    assert (waiting.status, waiting.attempts) == (models.PENDING, 0)  # no attempt was made
    assert waiting.next_attempt_at is not None
    put_off = waiting.next_attempt_at - waiting.updated_at
    turn = timedelta(seconds=3600 / ISSUED - 1)  # the next token, less the 1 s bound
    assert turn - timedelta(seconds=5) < put_off <= 2 * turn  # jittered up to twice
    assert waiting.error is not None and "provider rate limit of sms" in waiting.error
    assert any(
        kind == "deferred" and "provider rate limit of sms" in detail
        for kind, detail in _history(waiting.id)
    )


def test_a_429_from_twilio_slows_the_account_down_and_the_delivery_is_retried(
    settings_env: pytest.MonkeyPatch, twilio: TwilioServer
) -> None:
    configure(settings_env, {"rate_limits": "sms=20/s"})
    [delivery_id] = _planned_welcome_sms("alice")
    twilio.fail_next(429, twilio_error(429, 20429, "Too Many Requests"))
    service.deliver(delivery_id)

    [delivery] = deliveries()
    assert (delivery.status, delivery.attempts, delivery.status_code) == ("pending", 1, 429)
    state = rate_limit.limiter().state("sms")
    assert state is not None and state.lowered_until is not None
    assert state.rate_per_second == pytest.approx(20 * ISSUED / 2)
    assert state.account == twilio.account_sid


def test_ops_see_the_bucket_in_the_snapshot_the_table_and_the_metrics(
    settings_env: pytest.MonkeyPatch, twilio: TwilioServer
) -> None:
    configure(settings_env, {"rate_limits": "sms=20/s", "admin_token": TOKEN})
    throttled = SendResult(Outcome.FAILED, status_code=429, transient=True, retry_after_seconds=30)
    rate_limit.limiter().observe("sms", throttled)

    with session_scope() as session:
        sms = next(p for p in queues.snapshot(session).providers if p.channel == "sms")
    assert (sms.mode, sms.rate_limited) == ("live", True)
    assert sms.rate_limit is not None and sms.rate_limit.limit == "20/s"
    assert sms.rate_limit.tokens is not None and sms.rate_limit.tokens <= 1  # refilling
    assert sms.rate_limit.lowered_until is not None

    table = CliRunner().invoke(cli, ["queues"])
    assert table.exit_code == 0, table.output
    line = next(x for x in table.stdout.splitlines() if x.startswith("provider Twilio"))
    assert line.startswith(
        f"provider Twilio (sms, live): rate limited 20/s (account {twilio.account_sid}): "
    )
    assert f"{20 * ISSUED / 2:g}/s now, lowered until" in line
    assert "provider SendGrid (email, dry_run): not limited" in table.stdout

    answer = TestClient(create_app()).get("/metrics", headers=bearer())
    assert answer.status_code == 200
    samples = {
        (sample.name, tuple(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }
    sms_label = (("channel", "sms"),)
    rate = samples[("carillon_rate_limit_per_second", sms_label)]
    assert rate == pytest.approx(20 * ISSUED / 2)
    assert samples[("carillon_rate_limit_lowered", sms_label)] == 1.0
    assert samples[("carillon_rate_limit_tokens", sms_label)] <= 1
    assert ("carillon_rate_limit_tokens", (("channel", "email"),)) not in samples


# --------------------------------------------------------------- a turn is held to departure


class HeldUp:
    """An asynchronous SMS adapter whose first call is held up `stall` seconds after it starts
    and before its bytes leave, as a process the machine does not schedule is; it records when
    each call leaves, as the provider counts them."""

    name = "sms"

    def __init__(self, stall: float) -> None:
        self.stall, self.departures, self.started = stall, list[float](), 0

    def send(self, message: Message) -> SendResult:
        raise AssertionError("the sending loop calls send_async")

    def close(self) -> None:
        pass

    async def send_async(self, message: Message) -> SendResult:
        self.started += 1
        if self.started == 1:
            await asyncio.sleep(self.stall)
        await before_departure()
        self.departures.append(time.monotonic())
        return SendResult(Outcome.SENT, provider_message_id=message.delivery_id, status_code=201)

    async def aclose(self) -> None:
        pass


def _messages(count: int) -> list[Message]:
    return [
        Message(str(n), "sms", Recipient(f"p{n}", phone=f"+3361111111{n}"), {"text": "Hi"})
        for n in range(count)
    ]


def _busiest_second(times: list[float]) -> int:
    return max(sum(1 for t in times if start <= t < start + 1.0) for start in times)


def test_a_call_held_up_past_its_turn_takes_a_new_one_before_it_leaves(
    settings_env: pytest.MonkeyPatch, twilio: TwilioServer
) -> None:
    """2/s: turns come 1/1.7 s apart. The first call is held up 0.7 s after its turn: leaving
    then, it would share a second with the next two turns' calls (three, over the limit).
    The bound leaves room for a second stale turn, as a loaded machine may wake it late."""
    configure(settings_env, {"rate_limits": "sms=2/s", "rate_limit_max_wait_seconds": 5})
    adapter = HeldUp(stall=0.7)
    sender = Sender({"sms": adapter}, get_settings())
    try:
        answers = sender.send(_messages(3))
    finally:
        sender.close()
    assert all(isinstance(a, SendResult) and a.outcome is Outcome.SENT for a in answers)
    assert len(adapter.departures) == 3
    assert _busiest_second(adapter.departures) <= 2


def test_a_held_up_call_without_a_new_turn_in_reach_is_put_off_not_sent(
    settings_env: pytest.MonkeyPatch, twilio: TwilioServer
) -> None:
    configure(settings_env, {"rate_limits": "sms=2/s", "rate_limit_max_wait_seconds": 0.1})
    adapter = HeldUp(stall=0.3)  # past its turn; the next is 0.29 s off, beyond the bound
    sender = Sender({"sms": adapter}, get_settings())
    try:
        [answer] = sender.send(_messages(1))
    finally:
        sender.close()
    assert isinstance(answer, PutOff) and adapter.departures == []
    assert "provider rate limit of sms: no turn free, 1 missed" in answer.reason


def test_the_lateness_a_turn_allows_keeps_any_window_under_the_limit() -> None:
    """Turns at `(1 - HEADROOM) * N / period`, each call within the tolerance of its turn:
    the N+1 turns that one window would need span more than the window and the tolerance."""
    for count, period in ((1, 1.0), (20, 1.0), (100, 1.0), (200, 3600.0)):
        rate = (1 - rate_limit.HEADROOM) * count / period
        assert count / rate > period + 2 * late_tolerance(period)  # room left for the way


def test_twilio_calls_leave_through_the_gate(
    settings_env: pytest.MonkeyPatch, twilio: TwilioServer
) -> None:
    """The real adapter awaits the gate as its request is about to leave, not before."""
    seen: list[int] = []

    async def gate() -> None:
        seen.append(len(twilio.requests))

    async def send() -> SendResult:
        adapter = build_channels(get_settings())["sms"]
        departure_gate.set(gate)
        try:
            return await adapter.send_async(_messages(1)[0])  # type: ignore[attr-defined, no-any-return]
        finally:
            await adapter.aclose()  # type: ignore[attr-defined]

    result = asyncio.run(send())
    assert result.outcome is Outcome.SENT and seen == [0] and len(twilio.requests) == 1


# --------------------------------------------------------------- the limit, as Twilio sees it

PEOPLE = 120
LIMIT = 20


def _plan_welcome_sms() -> None:
    """120 people opt in to SMS and subscribe: their welcome SMS are planned (routed here),
    and the send jobs queued, for the workers to make."""
    catalog.sync_directory(SHIPPED)
    people = [
        {
            "type": "identify",
            "userId": f"user{i}",
            "timestamp": at(0),
            "traits": {"first_name": f"P{i}", "phone": f"+3361{i:07d}", "sms_opt_in": True},
        }
        for i in range(PEOPLE)
    ]
    process(ingest(*people))
    process(ingest(*(newsletter(user=f"user{i}") for i in range(PEOPLE))))


def _sent() -> int:
    with session_scope() as session:
        rows = session.scalars(select(Delivery.status).where(Delivery.channel == "sms")).all()
    return sum(status == models.SENT for status in rows)


def _carillon_env(server: TwilioServer) -> dict[str, str]:
    overrides = server.settings_overrides().items()
    return {
        **{f"CARILLON_{k.upper()}": str(v) for k, v in overrides if v is not None},
        "CARILLON_RATE_LIMITS": f"sms={LIMIT}/s",
    }


def _send_with_three_workers(tmp_path: Path, server: TwilioServer) -> None:
    """Production: three `carillon worker` processes sharing the Redis bucket."""
    args = ["worker", "--processes", "1", "--threads", "4", "--queue", "sms"]
    env = {**os.environ, **_carillon_env(server)}
    workers = [Process(args, env, tmp_path / f"worker{i}.log") for i in range(3)]
    try:
        wait_until("every SMS sent", lambda: _sent() == PEOPLE, 120, workers)
    finally:
        for worker in workers:
            worker.stop()


def _send_embedded(tmp_path: Path, server: TwilioServer) -> None:
    """The embedded default: `carillon serve`, its worker threads on the in-process bucket.
    Its in-process queue starts empty; its start-up sweep hands the planned rows over."""
    with running_carillon(tmp_path, _carillon_env(server), SERVE) as carillon:
        carillon.wait_until("every SMS sent", lambda: _sent() == PEOPLE, 120)


def test_concurrent_workers_never_exceed_the_limit_twilio_sees(tmp_path: Path) -> None:
    with TwilioServer() as server:
        _plan_welcome_sms()
        (_send_with_three_workers if PRODUCTION else _send_embedded)(tmp_path, server)
        requests = server.requests

    assert sorted(r.body["To"] for r in requests) == sorted(
        f"+3361{i:07d}" for i in range(PEOPLE)
    )  # every message arrived, exactly once
    arrivals = sorted(r.arrived_at for r in requests)
    busiest = max(sum(1 for t in arrivals if start <= t < start + 1.0) for start in arrivals)
    assert busiest <= LIMIT, f"{busiest} calls reached Twilio within one second"
    assert _sent() == PEOPLE
    assert {d.attempts for d in deliveries()} == {1}
