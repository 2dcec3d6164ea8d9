"""Carillon's own configuration, read once from the environment (prefix `CARILLON_`).

Each channel's provider settings (credentials, base URLs, senders) are the channel's own model,
declared on its spec (`channels/<name>/settings.py`); the per-channel settings here are checked
against the installed channels' names, read from the entry points without loading a channel, so
these settings stay at the bottom of the import graph.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import time, timedelta
from functools import lru_cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Literal, Self, TypeVar

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.durations import Cap, parse_cap, parse_duration

T = TypeVar("T")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CARILLON_", extra="ignore")

    database_url: str = "sqlite:///./carillon.db"
    # Unset: the in-process queue of the embedded default.
    redis_url: str | None = None
    journeys_dir: Path = Path("./journeys")
    # Computed traits, segments and lifecycle stages (docs/segments.md).
    segments_dir: Path = Path("./segments")
    # Broadcasts: one message to a whole audience at a set time (docs/campaigns.md).
    broadcasts_dir: Path = Path("./broadcasts")
    # Comma-separated write keys; `name=key` labels the source. Production must set its own.
    write_keys: str = "dev"
    admin_token: str | None = None
    # Keys that may read people's data (`GET /v1/profiles/…`, export) but not erase it: for a
    # support tool or a CRM sync. `name=key` names the key in the audit trail. Never a write
    # key: write keys ship inside web pages and apps.
    read_keys: str = ""
    # Server-side keys that may send transactional messages (`POST /v1/messages`) and nothing
    # else: for a shop's backend. `name=key` names the key in logs. Never a write or read key.
    send_keys: str = ""
    # For `wait: {until: "09:00"}` when a profile has no valid `timezone` trait (IANA name).
    default_timezone: str = "UTC"

    # Worker threads for the embedded `serve` and per `carillon worker` process.
    worker_threads: int = 4
    scheduler_interval_seconds: float = 1.0
    timer_batch_size: int = 500
    # Rows still pending this long after their enqueue are re-enqueued by the sweeper.
    sweep_after_seconds: float = 30.0
    # Ops: a due timer still unfired after this long counts as late (/ops/queues, /metrics).
    timer_late_seconds: float = 60.0
    # Ops KPIs: what one sent message costs per channel, `channel=0.07,…`; a channel not
    # named costs what its spec says (`ChannelSpec.cost`).
    cost_per_message: str = ""
    # Or per thousand of the channel's billed units, as ad platforms price people reached
    # (CPM): `meta_audience=6.50` is 0.0065 per person added to an audience. A channel is
    # priced by one of the two settings, not both.
    cost_per_thousand: str = ""
    # The currency of those prices (ISO 4217): ROI compares them with goal revenue, which must
    # be counted in the same currency.
    cost_currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    # Spend per channel and period, in that currency: `sms=50EUR/day,email=10EUR/week`; a
    # marketing message that would go over it waits for the next period (`wait`) or is dropped
    # (`skip`): one value for every channel, or per channel, `sms=skip,email=wait` (a channel
    # not named waits).
    budgets: str = ""
    on_budget: str = "wait"
    # How long after a message a goal's revenue is still credited to it, per channel,
    # `email=5d,sms=1d`; a channel not named keeps the window its spec declares.
    attribution_windows: str = ""
    # Send-time policy (docs/delivery.md). Quiet hours per channel in the person's timezone,
    # `channel=21:00-08:00,…`; a channel not named has none, empty: none at all; unset: each
    # channel's own default (`ChannelSpec.quiet_hours`).
    quiet_hours: str | None = None
    # Frequency caps per channel per person, all journeys together: `channel=1/24h+3/7d,…`.
    frequency_caps: str = ""
    # Hosts a link taken from event or profile data may point to in an e-mail, comma-separated,
    # `*.` for subdomains: `shop.example,*.shop.example`; empty: any host (http(s) only).
    link_hosts: str = ""

    # Where providers reach Carillon's webhooks (e.g. https://carillon.example.com); unset:
    # no status callbacks are requested.
    public_url: str | None = None
    provider_timeout_seconds: float = 10.0
    # Provider calls in flight at once per channel in each worker process (each channel its
    # own slots and connections): what hides the provider's latency, not the thread count.
    send_concurrency: int = Field(default=50, ge=1, le=1000)
    # Due deliveries of its channel one send job claims, checks and sends together (its own
    # row included): the begin, checks' reads and result write are shared, and a provider that
    # takes many messages per request gets them in one. A worker killed mid-batch leaves up to
    # this many rows per thread for the sweeper. At most Meta's 10,000 rows per request.
    delivery_batch_size: int = Field(default=50, ge=1, le=10_000)
    # A row still `sending` this long after its claim lost its worker during the provider call:
    # the sweeper resends it (a channel whose provider ignores a repeat) or marks it `unknown`.
    # Must exceed the provider timeout, or a slow live call would be judged abandoned.
    sending_timeout_seconds: float = 300.0
    # Retries of transient provider errors (timeouts, 429, 5xx): attempts per channel in all,
    # `channel=5,…`; a channel not named gets its spec's `attempts`, else this maximum.
    delivery_max_attempts: int = 5
    delivery_attempts_per_channel: str = ""
    # Exponential back-off with full jitter: base * 2**(attempt-1), capped; Retry-After wins.
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 600.0
    # Provider calls per account, shared by every worker: `channel=20/s,…` (unset channel: no
    # limit). A worker waits this long at most for its turn, else the delivery goes back to
    # pending until the bucket has room.
    rate_limits: str = ""
    rate_limit_max_wait_seconds: float = Field(default=2.0, gt=0)

    # Signs every token Carillon hands out (unsubscribe links, dashboard sessions). Required by
    # the production roles; `serve` on SQLite makes one beside the database (app/signing.py).
    secret_key: str | None = Field(default=None, min_length=16)

    @model_validator(mode="after")
    def _sending_outlasts_calls(self) -> Self:
        if self.sending_timeout_seconds <= self.provider_timeout_seconds:
            raise ValueError(
                f"CARILLON_SENDING_TIMEOUT_SECONDS ({self.sending_timeout_seconds:g}) must be "
                "longer than CARILLON_PROVIDER_TIMEOUT_SECONDS "
                f"({self.provider_timeout_seconds:g}): a delivery is only judged abandoned "
                "once its provider call cannot still be running"
            )
        return self

    @field_validator("secret_key", "admin_token", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """`CARILLON_SECRET_KEY=` in an env file means "not set", not a too-short key."""
        return None if value == "" else value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @field_validator(
        "cost_per_message",
        "on_budget",
        "attribution_windows",
        "delivery_attempts_per_channel",
        "quiet_hours",
        "frequency_caps",
        "rate_limits",
    )
    @classmethod
    def _per_channel_parses(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Refuse a bad value at start, not on the first send or dashboard view."""
        if value is None:  # quiet hours unset: the channels' own defaults
            return value
        parsers: dict[str, Callable[[str], object]] = {
            "cost_per_message": parse_costs,
            "on_budget": parse_on_budget,
            "attribution_windows": parse_attribution_windows,
            "delivery_attempts_per_channel": parse_attempts,
            "quiet_hours": parse_quiet_hours,
            "frequency_caps": parse_frequency_caps,
            "rate_limits": parse_rate_limits,
        }
        parsers[str(info.field_name)](value)
        return value

    @field_validator("cost_per_thousand")
    @classmethod
    def _priced_once(cls, value: str, info: ValidationInfo) -> str:
        """Two prices for one channel would leave which one counts to the reader's guess."""
        both = parse_costs_per_thousand(value).keys() & parse_costs(
            str(info.data.get("cost_per_message", ""))
        )
        if both:
            raise ValueError(
                f"CARILLON_COST_PER_THOUSAND: {', '.join(sorted(both))} also priced in "
                "CARILLON_COST_PER_MESSAGE; price each channel in one of them"
            )
        return value

    @field_validator("budgets")
    @classmethod
    def _budgets_parse(cls, value: str, info: ValidationInfo) -> str:
        parse_budgets(value, str(info.data.get("cost_currency", "EUR")))
        return value

    def budgets_by_channel(self) -> dict[str, Budget]:
        return parse_budgets(self.budgets, self.cost_currency)

    def on_budget_for(self, channel: str) -> OnBudget:
        """What a message of `channel` does when a budget holds it and its journey does not say."""
        return parse_on_budget(self.on_budget).get(channel, "wait")

    def quiet_hours_by_channel(self) -> dict[str, QuietHours] | None:
        """None when CARILLON_QUIET_HOURS is unset: each channel keeps its own default."""
        return None if self.quiet_hours is None else parse_quiet_hours(self.quiet_hours)

    def caps_by_channel(self) -> dict[str, tuple[Cap, ...]]:
        return parse_frequency_caps(self.frequency_caps)

    def attribution_windows_by_channel(self) -> dict[str, timedelta]:
        return parse_attribution_windows(self.attribution_windows)

    def message_costs(self) -> dict[str, float]:
        """Cost of one billed unit per channel, whichever setting prices it; channels not
        listed have no configured cost."""
        per_thousand = parse_costs_per_thousand(self.cost_per_thousand)
        return {
            **parse_costs(self.cost_per_message),
            **{channel: price / 1000 for channel, price in per_thousand.items()},
        }

    def write_key_sources(self) -> dict[str, str]:
        """Map each accepted write key to the name of its source."""
        return named_keys(self.write_keys, "default")

    def read_key_names(self) -> dict[str, str]:
        """Map each read key to the name the audit trail gives it (unnamed: a digest prefix)."""
        return named_keys(self.read_keys, None)

    def send_key_names(self) -> dict[str, str]:
        """Map each send key to the name logs give it (unnamed: a digest prefix)."""
        return named_keys(self.send_keys, None)

    @field_validator("read_keys")
    @classmethod
    def _read_keys_parse(cls, value: str, info: ValidationInfo) -> str:
        write_keys = named_keys(str(info.data.get("write_keys", "")), "default")
        for key in named_keys(value, None):
            if key in write_keys:
                raise ValueError(
                    "CARILLON_READ_KEYS: a read key is also a write key; write keys are public "
                    "(they ship inside web pages and apps), so a read key must be a secret of "
                    "its own"
                )
            if len(key) < MIN_READ_KEY_LENGTH:
                raise ValueError(
                    f"CARILLON_READ_KEYS: a key of {len(key)} characters is too short to guard "
                    f"people's data; use {MIN_READ_KEY_LENGTH} or more (`name=key`, "
                    "comma-separated)"
                )
        return value

    @field_validator("send_keys")
    @classmethod
    def _send_keys_parse(cls, value: str, info: ValidationInfo) -> str:
        """A send key reaches anybody's inbox: a secret of its own, long enough not to guess."""
        others = {
            **named_keys(str(info.data.get("write_keys", "")), "default"),
            **named_keys(str(info.data.get("read_keys", "")), None),
        }
        for key in named_keys(value, None):
            if key in others:
                raise ValueError(
                    "CARILLON_SEND_KEYS: a send key is also a write or read key; a send key "
                    "stays on the shop's servers and must be a secret of its own"
                )
            if len(key) < MIN_READ_KEY_LENGTH:
                raise ValueError(
                    f"CARILLON_SEND_KEYS: a key of {len(key)} characters is too short; use "
                    f"{MIN_READ_KEY_LENGTH} or more (`name=key`, comma-separated)"
                )
        return value


# A read key opens every person's data: long enough that guessing is not an option.
MIN_READ_KEY_LENGTH = 16


def named_keys(text: str, default: str | None) -> dict[str, str]:
    """`key1,name=key2` → {key: name}; an unnamed key is named `default`, or when that is None
    by the first 12 hex digits of its SHA-256 (so logs and audit rows never hold the key)."""
    keys: dict[str, str] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, key = item.partition("=")
        if not sep:
            key, name = name, default or f"sha256:{hashlib.sha256(name.encode()).hexdigest()[:12]}"
        keys[key.strip()] = name.strip()
    return keys


def parse_per_channel(
    text: str, variable: str, example: str, value: Callable[[str], T]
) -> dict[str, T]:
    """`channel=value,channel=value` settings; `value` raises ValueError on a bad value, and
    the error names the variable and shows an example, so a typo fails at start-up."""
    parsed: dict[str, T] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        channel, sep, raw = item.partition("=")
        try:
            if not sep or not channel.strip():
                raise ValueError
            parsed[channel.strip()] = value(raw.strip())
        except ValueError:
            raise ValueError(f"{variable}: {item!r} should be channel=value, {example}") from None
    return parsed


def _amount(raw: str) -> float:
    amount = float(raw)
    if not 0 <= amount < float("inf"):
        raise ValueError(raw)
    return amount


def _attempts(raw: str) -> int:
    attempts = int(raw)
    if attempts < 1:
        raise ValueError(raw)
    return attempts


def parse_costs(text: str) -> dict[str, float]:
    return parse_per_channel(text, "CARILLON_COST_PER_MESSAGE", example("0.001", "0"), _amount)


def parse_costs_per_thousand(text: str) -> dict[str, float]:
    variable = "CARILLON_COST_PER_THOUSAND"
    hint = "e.g. meta_audience=6.50 (the price of a thousand people, or of a channel's units)"
    return known_channels(parse_per_channel(text, variable, hint, _amount), variable)


def parse_attribution_windows(text: str) -> dict[str, timedelta]:
    variable = "CARILLON_ATTRIBUTION_WINDOWS"
    example = "email=5d,sms=1d,meta_audience=7d (durations: 12h, 5d)"
    return known_channels(parse_per_channel(text, variable, example, parse_duration), variable)


def parse_attempts(text: str) -> dict[str, int]:
    return parse_per_channel(
        text, "CARILLON_DELIVERY_ATTEMPTS_PER_CHANNEL", example("5", "8"), _attempts
    )


OnBudget = Literal["wait", "skip"]
ON_BUDGET: tuple[OnBudget, ...] = ("wait", "skip")


def _on_budget(raw: str) -> OnBudget:
    for value in ON_BUDGET:
        if raw == value:
            return value
    raise ValueError(raw)


def parse_on_budget(text: str) -> dict[str, OnBudget]:
    """`skip` (every channel) or `sms=skip,email=wait` (a channel not named: wait)."""
    variable = "CARILLON_ON_BUDGET"
    if "=" not in text:
        try:
            return dict.fromkeys(channel_names(), _on_budget(text.strip()))
        except ValueError:
            raise ValueError(
                f"{variable}: {text!r} should be wait or skip, or per channel "
                f"{example('skip', 'wait')}"
            ) from None
    hint = example("skip", "wait") + " (wait or skip)"
    return known_channels(parse_per_channel(text, variable, hint, _on_budget), variable)


@dataclass(frozen=True)
class QuietHours:
    """A daily window of local wall-clock time, `start` included and `end` excluded; it
    crosses midnight when `start` is later than `end` (21:00-08:00)."""

    start: time
    end: time

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


_HH_MM = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")


def _clock_time(raw: str) -> time:
    match = _HH_MM.fullmatch(raw.strip())
    if match is None:
        raise ValueError(raw)
    return time(int(match.group(1)), int(match.group(2)))


def _quiet_window(raw: str) -> QuietHours:
    start, sep, end = raw.partition("-")
    window = QuietHours(_clock_time(start), _clock_time(end)) if sep else None
    if window is None or window.start == window.end:
        raise ValueError(raw)
    return window


def _caps(raw: str) -> tuple[Cap, ...]:
    return tuple(parse_cap(rule) for rule in raw.split("+"))


# The entry-point group channels register in (channels/registry.py loads them).
CHANNELS_GROUP = "carillon.channels"


@lru_cache
def channel_names() -> tuple[str, ...]:
    """The installed channels' names, read from the entry points without loading any channel,
    so the settings stay below everything else. Cached: reading the entry points scans every
    installed distribution, and the send-time checks parse per-channel settings per message."""
    return tuple(sorted(entry_points(group=CHANNELS_GROUP).names))


def example(*values: str) -> str:
    """`e.g. a=1,b=2`: the values given, set on the installed channels, so a hint names
    channels the reader has."""
    pairs = zip(channel_names(), values, strict=False)
    return "e.g. " + ",".join(f"{channel}={value}" for channel, value in pairs)


def known_channels(parsed: dict[str, T], variable: str) -> dict[str, T]:
    """A misspelt channel would silently apply to nothing."""
    names = channel_names()
    for channel in parsed:
        if channel not in names:
            raise ValueError(f"{variable}: unknown channel {channel!r}; one of: {', '.join(names)}")
    return parsed


def parse_quiet_hours(text: str) -> dict[str, QuietHours]:
    variable = "CARILLON_QUIET_HOURS"
    hint = example("21:00-08:00") + " (local HH:MM-HH:MM, start and end differ)"
    return known_channels(parse_per_channel(text, variable, hint, _quiet_window), variable)


def parse_frequency_caps(text: str) -> dict[str, tuple[Cap, ...]]:
    variable = "CARILLON_FREQUENCY_CAPS"
    hint = example("1/24h+3/7d", "1/24h") + " (count/duration, several joined with +)"
    return known_channels(parse_per_channel(text, variable, hint, _caps), variable)


@dataclass(frozen=True)
class Limit:
    """`count` calls per `period_seconds`, as configured (`text`)."""

    count: int
    period_seconds: float
    text: str

    @property
    def per_second(self) -> float:
        return self.count / self.period_seconds


def parse_rate_limits(text: str) -> dict[str, Limit]:
    """`channel=N/period` items; the period a duration (`s`, `10s`, `m`, `h`, `1d`)."""
    names = channel_names()
    limits: dict[str, Limit] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        channel, _, rate = (part.strip() for part in item.partition("="))
        count, _, period = (part.strip() for part in rate.partition("/"))
        problem = None
        if channel not in names:
            problem = f"unknown channel {channel!r} (one of: {', '.join(names)})"
        elif channel in limits:
            problem = f"{channel} is limited twice"
        elif not count.isdigit() or int(count) == 0:
            problem = "the count must be a whole number above zero"
        else:
            try:
                seconds = parse_duration(period if period[:1].isdigit() else f"1{period}")
            except ValueError:
                problem = "the period must be s, m, h or d, optionally with a number (10s)"
        if problem is not None:
            hint = example("100/s", "200/h", "20/s")
            raise ValueError(f"CARILLON_RATE_LIMITS: {item!r}: {problem}; {hint}")
        limits[channel] = Limit(int(count), seconds.total_seconds(), f"{count}/{period}")
    return limits


@lru_cache
def get_settings() -> Settings:
    return Settings()


# A budget's periods, each starting at 00:00 UTC (a week on Monday).
BUDGET_PERIODS = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(days=7)}
_BUDGET = re.compile(r"^(?P<amount>[0-9]+(?:\.[0-9]+)?)\s*(?P<currency>[A-Z]{3})$")


@dataclass(frozen=True)
class Budget:
    """At most `amount` (in the cost currency) spent on a channel per `period`."""

    amount: float
    currency: str
    period: str

    def __str__(self) -> str:
        return f"{self.amount:g}{self.currency}/{self.period}"


def parse_money(text: str) -> tuple[float, str] | None:
    """`50EUR` or `12.5 USD`: an amount above zero and its ISO 4217 code; None otherwise."""
    matched = _BUDGET.match(text.strip())
    if matched is None or float(matched["amount"]) <= 0:
        return None
    return float(matched["amount"]), matched["currency"]


def parse_budgets(text: str, currency: str) -> dict[str, Budget]:
    """`channel=50EUR/day` items: an amount, the cost currency, a period."""
    names = channel_names()
    found: dict[str, Budget] = {}
    hint = f"e.g. sms=50{currency}/day,email=10{currency}/week (periods: hour, day, week)"
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        channel, _, rest = (part.strip() for part in item.partition("="))
        money, slash, period = (part.strip() for part in rest.partition("/"))
        matched = parse_money(money)
        problem = None
        if channel not in names:
            problem = f"unknown channel {channel!r} (one of: {', '.join(names)})"
        elif channel in found:
            problem = f"{channel} has two budgets"
        elif not slash or not period:
            problem = "a budget without a period: say per what it is spent"
        elif period not in BUDGET_PERIODS:
            problem = f"unknown period {period!r}"
        elif matched is None:
            problem = "the amount must be a number above zero followed by a currency code"
        elif matched[1] != currency:
            problem = (
                f"the budget is in {matched[1]} but costs are counted in {currency} "
                "(CARILLON_COST_CURRENCY)"
            )
        if problem is not None or matched is None:
            raise ValueError(f"CARILLON_BUDGETS: {item!r}: {problem}; {hint}")
        found[channel] = Budget(*matched, period)
    return found
