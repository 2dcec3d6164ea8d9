"""Retries of transient provider errors, kept in the database rather than only in the broker.

A transient result (timeout, connection error, 429, 5xx) puts the row back to `pending` with
`next_attempt_at` = exponential back-off with full jitter, or the provider's `Retry-After` when
it is longer. The job is re-enqueued with that delay after commit; should the delayed message be
lost, the sweeper hands the row over again once it is due. When the channel's attempts are spent
the row becomes `dead` (a dead letter, replayable) with the provider's last words. A permanent
refusal is `failed` at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.settings import Settings, parse_attempts
from channels import registry


def max_attempts(settings: Settings, channel: str) -> int:
    """`delivery_attempts_per_channel` (`channel=5,…`), else the channel's own `attempts`,
    else `delivery_max_attempts`."""
    per_channel = parse_attempts(settings.delivery_attempts_per_channel)
    default = registry.spec(channel).attempts or max(1, settings.delivery_max_attempts)
    return per_channel.get(channel, default)


def backoff_seconds(
    settings: Settings,
    attempt: int,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """How long to wait after failed attempt number `attempt` (1-based)."""
    ceiling = min(settings.retry_max_seconds, settings.retry_base_seconds * 2 ** (attempt - 1))
    wait = (rng or random).uniform(0, ceiling)  # full jitter: workers do not retry in step
    if retry_after is not None:
        wait = max(wait, retry_after)  # the provider said when; never sooner
    return wait


@dataclass(frozen=True)
class Retry:
    """A transient failure that will be tried again at `at`."""

    at: datetime
    delay_seconds: float


def plan(
    settings: Settings,
    channel: str,
    attempts: int,
    retry_after: float | None,
    now: datetime,
) -> Retry | None:
    """When to try again after `attempts` attempts, or None when the channel's budget is spent."""
    if attempts >= max_attempts(settings, channel):
        return None
    delay = backoff_seconds(settings, attempts, retry_after)
    return Retry(at=now + timedelta(seconds=delay), delay_seconds=delay)
