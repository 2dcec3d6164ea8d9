"""Provider rate limits shared by every worker process: one token bucket per provider account.

`CARILLON_RATE_LIMITS=sms=20/s,email=100/s,meta_audience=200/h` gives each live channel a
bucket keyed by channel and account (Twilio account SID, a hash of the SendGrid key or of the
Meta token), so two accounts never share a budget and every worker on the same account does.
With Redis the bucket is a hash updated by one Lua script, atomic, on Redis's own clock (`TIME`)
so workers on different machines agree; without Redis an in-process bucket serves the embedded
default. Dry-run channels call nobody and are never limited.

The bucket holds at most one token: `N/period` then holds over every window of that period (a
larger burst would let `N + burst - 1` through some window, and providers count windows). A
worker that finds it empty reserves the next token (the count may go negative) and sleeps until
its turn, so each send costs one Redis call and waiting workers are served in order. A turn
further off than `CARILLON_RATE_LIMIT_MAX_WAIT_SECONDS` is not reserved: the worker hands the
delivery back (pending, due later) rather than hold a thread every queue shares.

The provider counts arrivals, which come a few milliseconds after the call, and a process can
stall between a token and its call (a garbage collection, a busy GIL, a machine past its
cores); tokens are issued `HEADROOM` under the configured rate, and a call that leaves later
than a share of that headroom after its turn takes a new one (`app.delivery.sender`), so no
bunch makes the provider see more than its limit in any window.
A 429 halves the account's rate for the provider's `Retry-After` (60 s without one) in the
shared state, so every worker slows down; the retry machinery re-queues the refused delivery.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import redis

from app import clock
from app.settings import Settings, get_settings, parse_rate_limits
from channels import registry
from channels.base import SendResult

log = logging.getLogger(__name__)

HEADROOM = 0.15
SLOWDOWN = 0.5  # the rate after a 429
LOWERED_SECONDS = 60.0  # how long, when the provider gave no Retry-After
CAPACITY = 1.0
KEY_PREFIX = "carillon:ratelimit"


def account_of(channel: str, settings: Settings) -> str | None:
    """Whose budget a call spends; None for a channel without credentials (a dry run)."""
    spec = registry.spec(channel)
    return spec.rate_limit_account(settings) if spec.credentials(settings) else None


@dataclass(frozen=True)
class Grant:
    """The bucket's answer. Granted: a token now (`wait_seconds` 0) or reserved that far ahead.
    Not granted: no turn within the bound; ask again in `wait_seconds`."""

    granted: bool
    wait_seconds: float


@dataclass(frozen=True)
class Reading:
    tokens: float  # negative: turns reserved by waiting workers
    rate_per_second: float  # now, lowered or not
    lowered_until: datetime | None


class Buckets(Protocol):
    def take(self, key: str, rate: float, max_wait: float) -> Grant: ...
    def lower(self, key: str, rate: float, seconds: float) -> None: ...
    def read(self, key: str, rate: float) -> Reading: ...


# KEYS[1]: the bucket hash. ARGV: op (take | lower | read), rate per second, capacity,
# slowdown factor, then max wait (take) or seconds to stay lowered (lower).
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local op, rate, capacity = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local slowdown, arg = tonumber(ARGV[4]), tonumber(ARGV[5])
local s = redis.call('HMGET', KEYS[1], 'tokens', 'at', 'lowered_until')
local tokens = tonumber(s[1]) or capacity
local at = tonumber(s[2]) or now
local lowered_until = tonumber(s[3]) or 0
local elapsed = math.max(0, now - at)
local slow = math.max(0, math.min(elapsed, lowered_until - at))
tokens = math.min(capacity, tokens + slow * rate * slowdown + (elapsed - slow) * rate)
local granted, wait = 1, 0
if op == 'lower' then
  lowered_until = math.max(lowered_until, now + arg)
  tokens = math.min(tokens, 0)
end
local current = rate
if now < lowered_until then current = rate * slowdown end
if op == 'take' then
  if tokens < 1 then
    wait = (1 - tokens) / current
    if wait > arg then granted, wait = 0, wait - arg end
  end
  if granted == 1 then tokens = tokens - 1 end
end
if op ~= 'read' then
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now),
             'lowered_until', tostring(lowered_until))
  local ttl = math.max((capacity - tokens) / current, lowered_until - now, 0) + 60
  redis.call('PEXPIRE', KEYS[1], math.ceil(ttl * 1000))
end
return {granted, tostring(wait), tostring(tokens), tostring(current), tostring(lowered_until),
        tostring(now)}
"""


class RedisBuckets:
    """The buckets in Redis, shared by every process on the same Redis."""

    def __init__(self, client: redis.Redis) -> None:
        self._script = client.register_script(_SCRIPT)

    def _run(self, key: str, op: str, rate: float, arg: float) -> list[Any]:
        answer: list[Any] = self._script(keys=[key], args=[op, rate, CAPACITY, SLOWDOWN, arg])
        return answer

    def take(self, key: str, rate: float, max_wait: float) -> Grant:
        granted, wait, *_ = self._run(key, "take", rate, max_wait)
        return Grant(bool(int(granted)), float(wait))

    def lower(self, key: str, rate: float, seconds: float) -> None:
        self._run(key, "lower", rate, seconds)

    def read(self, key: str, rate: float) -> Reading:
        _, _, tokens, current, until, now = self._run(key, "read", rate, 0)
        return _reading(float(tokens), float(current), float(until), float(now))


@dataclass
class _State:
    tokens: float
    at: float
    lowered_until: float = 0.0


class LocalBuckets:
    """The same buckets in this process, for the embedded default: the same arithmetic as the
    script, under a lock, on `app.clock` (so a ManualClock drives it in tests)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, _State] = {}

    def _refilled(self, key: str, rate: float, now: float) -> _State:
        state = self._states.setdefault(key, _State(CAPACITY, now))
        elapsed = max(0.0, now - state.at)
        slow = max(0.0, min(elapsed, state.lowered_until - state.at))
        gained = slow * rate * SLOWDOWN + (elapsed - slow) * rate
        state.tokens, state.at = min(CAPACITY, state.tokens + gained), now
        return state

    @staticmethod
    def _current(state: _State, rate: float, now: float) -> float:
        return rate * SLOWDOWN if now < state.lowered_until else rate

    def take(self, key: str, rate: float, max_wait: float) -> Grant:
        now = clock.now().timestamp()
        with self._lock:
            state = self._refilled(key, rate, now)
            if state.tokens < 1:
                wait = (1 - state.tokens) / self._current(state, rate, now)
                if wait > max_wait:
                    return Grant(False, wait - max_wait)
            else:
                wait = 0.0
            state.tokens -= 1
            return Grant(True, wait)

    def lower(self, key: str, rate: float, seconds: float) -> None:
        now = clock.now().timestamp()
        with self._lock:
            state = self._refilled(key, rate, now)
            state.lowered_until = max(state.lowered_until, now + seconds)
            state.tokens = min(state.tokens, 0.0)

    def read(self, key: str, rate: float) -> Reading:
        now = clock.now().timestamp()
        with self._lock:
            state = self._refilled(key, rate, now)
            current = self._current(state, rate, now)
            return _reading(state.tokens, current, state.lowered_until, now)


def _reading(tokens: float, current: float, lowered_until: float, now: float) -> Reading:
    until = datetime.fromtimestamp(lowered_until, UTC) if lowered_until > now else None
    return Reading(tokens, current, until)


@dataclass(frozen=True)
class BucketState:
    """What ops see of one channel's bucket."""

    limit: str
    account: str
    tokens: float | None  # None: the bucket could not be read (Redis down)
    rate_per_second: float | None
    lowered_until: str | None


class RateLimiter:
    """The limits of one configuration, over one of the two bucket back-ends."""

    def __init__(self, settings: Settings, buckets: Buckets) -> None:
        self.buckets = buckets
        self.max_wait = settings.rate_limit_max_wait_seconds
        self.limits = parse_rate_limits(settings.rate_limits)
        self._accounts = {ch: account_of(ch, settings) for ch in self.limits}

    def _bucket(self, channel: str) -> tuple[str, float] | None:
        limit, account = self.limits.get(channel), self._accounts.get(channel)
        if limit is None or account is None:
            return None
        return f"{KEY_PREFIX}:{channel}:{account}", limit.per_second * (1 - HEADROOM)

    def limited(self, channel: str) -> bool:
        """Whether a call on this channel must take a token (no I/O)."""
        return self._bucket(channel) is not None

    def interval(self, channel: str) -> float:
        """Seconds between two tokens of the channel's bucket (0 when it is not limited)."""
        bucket = self._bucket(channel)
        return 1 / bucket[1] if bucket is not None else 0.0

    def reserve(self, channel: str, max_wait: float | None = None) -> tuple[bool, float]:
        """Take a token for one call without waiting: (True, seconds until the reserved turn)
        once it is ours, or (False, how long to put the delivery off) when no turn is free
        within the bound (`max_wait`, else the configured one). The caller waits for its turn
        (a thread sleeps, the sending loop awaits)."""
        bucket = self._bucket(channel)
        if bucket is None:
            return True, 0.0
        try:
            grant = self.buckets.take(*bucket, self.max_wait if max_wait is None else max_wait)
        except redis.RedisError as exc:
            # No token without the bucket: the claimed row goes back to pending, not astray.
            log.warning("rate limit of %s unreachable, delivery put off: %s", channel, exc)
            return False, self.max_wait * random.uniform(1.0, 2.0)
        if not grant.granted:
            # Jittered, so deliveries put off together do not all come back at once.
            return False, grant.wait_seconds * random.uniform(1.0, 2.0)
        return True, grant.wait_seconds

    def acquire(self, channel: str) -> float | None:
        """Hold a token for one call: None once it is ours (after sleeping until a reserved
        turn), or, when no turn is free within the bound, how long to put the delivery off."""
        granted, seconds = self.reserve(channel)
        if not granted:
            return seconds
        if seconds > 0:
            time.sleep(seconds)
        return None

    def observe(self, channel: str, result: SendResult) -> None:
        """A 429 slows the account down for every worker: halved for Retry-After or 60 s."""
        bucket = self._bucket(channel)
        if bucket is None or result.status_code != 429:
            return
        seconds = result.retry_after_seconds or LOWERED_SECONDS
        try:
            self.buckets.lower(*bucket, seconds)
        except redis.RedisError as exc:  # the answer must still be recorded
            log.warning("rate limit of %s unreachable, not lowered: %s", channel, exc)
            return
        log.warning("%s answered 429: rate halved for %.0fs", channel, seconds)

    def state(self, channel: str) -> BucketState | None:
        """The bucket as of now, or None when the channel is not limited."""
        bucket = self._bucket(channel)
        if bucket is None:
            return None
        label = self._accounts[channel] or ""
        try:
            reading = self.buckets.read(*bucket)
        except redis.RedisError as exc:
            log.warning("rate limit of %s unreadable: %s", channel, exc)
            return BucketState(self.limits[channel].text, label, None, None, None)
        until = reading.lowered_until.isoformat() if reading.lowered_until else None
        return BucketState(
            self.limits[channel].text,
            label,
            round(reading.tokens, 3),
            round(reading.rate_per_second, 6),
            until,
        )


_built: tuple[Settings, RateLimiter] | None = None
_build_lock = threading.Lock()


def limiter() -> RateLimiter:
    """The limiter of the current settings: Redis buckets when CARILLON_REDIS_URL is set (as
    app.queue picks its broker), else this process's. Rebuilt when the settings are."""
    global _built
    settings = get_settings()
    with _build_lock:
        if _built is None or _built[0] is not settings:
            buckets: Buckets = (
                RedisBuckets(redis.Redis.from_url(settings.redis_url))
                if settings.redis_url
                else LocalBuckets()
            )
            _built = (settings, RateLimiter(settings, buckets))
        return _built[1]
