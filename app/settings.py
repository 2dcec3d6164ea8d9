"""All configuration, read once from the environment (prefix `CARILLON_`).

Provider credentials keep the providers' own variable names (`SENDGRID_API_KEY`, `TWILIO_*`,
`META_ACCESS_TOKEN`) so the values people already export for the official SDKs just work.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import time, timedelta
from functools import lru_cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Self, TypeVar

from pydantic import AliasChoices, Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.durations import Cap, parse_cap, parse_duration
from channels.email.keys import sendgrid_public_key

T = TypeVar("T")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CARILLON_", extra="ignore")

    database_url: str = "sqlite:///./carillon.db"
    # Unset: the in-process queue of the embedded default.
    redis_url: str | None = None
    journeys_dir: Path = Path("./journeys")
    # Comma-separated write keys; `name=key` labels the source. Production must set its own.
    write_keys: str = "dev"
    admin_token: str | None = None
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
    # Ops KPIs: what one sent message costs per channel, `email=0.001,sms=0.07,meta_audience=0`.
    cost_per_message: str = ""
    # How long after a message a goal's revenue is still credited to it, per channel,
    # `email=5d,sms=1d`; a channel not named keeps the window its spec declares.
    attribution_windows: str = ""
    # Send-time policy (docs/delivery.md). Quiet hours per channel in the person's timezone,
    # `sms=21:00-08:00,email=22:00-07:00`; a channel not named has none, empty: none at all.
    quiet_hours: str = "sms=21:00-08:00"
    # Frequency caps per channel per person, all journeys together: `email=1/24h+3/7d,sms=1/24h`.
    frequency_caps: str = ""
    # Hosts a link taken from event or profile data may point to in an e-mail, comma-separated,
    # `*.` for subdomains: `shop.example,*.shop.example`; empty: any host (http(s) only).
    link_hosts: str = ""

    sendgrid_base_url: str = "https://api.sendgrid.com"
    twilio_base_url: str = "https://api.twilio.com"
    meta_graph_url: str = "https://graph.facebook.com"
    meta_api_version: str = "v21.0"
    # Where providers reach Carillon's webhooks (e.g. https://carillon.example.com); unset:
    # no status callbacks are requested.
    public_url: str | None = None
    provider_timeout_seconds: float = 10.0
    # A row still `sending` this long after its claim lost its worker during the provider call:
    # the sweeper resends it (meta_audience: idempotent) or marks it `unknown` (email, sms).
    # Must exceed the provider timeout, or a slow live call would be judged abandoned.
    sending_timeout_seconds: float = 300.0
    # Retries of transient provider errors (timeouts, 429, 5xx): attempts per channel in all,
    # `email=5,sms=5,meta_audience=8`; a channel not named gets `delivery_max_attempts`.
    delivery_max_attempts: int = 5
    delivery_attempts_per_channel: str = ""
    # Exponential back-off with full jitter: base * 2**(attempt-1), capped; Retry-After wins.
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 600.0
    # Provider calls per account, shared by every worker: `sms=20/s,email=100/s,meta_audience=200/h`
    # (unset channel: no limit). A worker waits this long at most for its turn, else the
    # delivery goes back to pending until the bucket has room.
    rate_limits: str = ""
    rate_limit_max_wait_seconds: float = Field(default=2.0, gt=0)

    sendgrid_api_key: str | None = Field(
        default=None, validation_alias=AliasChoices("SENDGRID_API_KEY", "CARILLON_SENDGRID_API_KEY")
    )
    sendgrid_from_email: str = "no-reply@example.com"
    # The Event Webhook's verification key as SendGrid shows it (base64 DER, or PEM); unset:
    # every SendGrid webhook is refused, since an unsigned one could unsubscribe anybody.
    sendgrid_webhook_public_key: str | None = None
    # Signs every token Carillon hands out (unsubscribe links, dashboard sessions). Required by
    # the production roles; `serve` on SQLite makes one beside the database (app/signing.py).
    secret_key: str | None = Field(default=None, min_length=16)
    # The answer to an SMS "HELP" (TwiML reply to Twilio's inbound webhook).
    sms_help_text: str = (
        "Messages marketing : STOP pour vous désabonner, START pour vous réabonner. "
        "Marketing messages: reply STOP to opt out, START to opt back in."
    )
    twilio_account_sid: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TWILIO_ACCOUNT_SID", "CARILLON_TWILIO_ACCOUNT_SID"),
    )
    twilio_auth_token: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TWILIO_AUTH_TOKEN", "CARILLON_TWILIO_AUTH_TOKEN"),
    )
    twilio_from_number: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TWILIO_FROM_NUMBER", "CARILLON_TWILIO_FROM_NUMBER"),
    )
    twilio_messaging_service_sid: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "TWILIO_MESSAGING_SERVICE_SID", "CARILLON_TWILIO_MESSAGING_SERVICE_SID"
        ),
    )
    meta_access_token: str | None = Field(
        default=None,
        validation_alias=AliasChoices("META_ACCESS_TOKEN", "CARILLON_META_ACCESS_TOKEN"),
    )

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

    @field_validator("sendgrid_webhook_public_key")
    @classmethod
    def _webhook_key_parses(cls, value: str | None) -> str | None:
        if value:
            sendgrid_public_key(value)  # a pasted key cut short fails at start, not per webhook
        return value

    @field_validator(
        "cost_per_message",
        "attribution_windows",
        "delivery_attempts_per_channel",
        "quiet_hours",
        "frequency_caps",
        "rate_limits",
    )
    @classmethod
    def _per_channel_parses(cls, value: str, info: ValidationInfo) -> str:
        """Refuse a bad value at start, not on the first send or dashboard view."""
        parsers: dict[str, Callable[[str], object]] = {
            "cost_per_message": parse_costs,
            "attribution_windows": parse_attribution_windows,
            "delivery_attempts_per_channel": parse_attempts,
            "quiet_hours": parse_quiet_hours,
            "frequency_caps": parse_frequency_caps,
            "rate_limits": parse_rate_limits,
        }
        parsers[str(info.field_name)](value)
        return value

    def quiet_hours_by_channel(self) -> dict[str, QuietHours]:
        return parse_quiet_hours(self.quiet_hours)

    def caps_by_channel(self) -> dict[str, tuple[Cap, ...]]:
        return parse_frequency_caps(self.frequency_caps)

    def attribution_windows_by_channel(self) -> dict[str, timedelta]:
        return parse_attribution_windows(self.attribution_windows)

    def message_costs(self) -> dict[str, float]:
        """Cost of one sent message per channel; channels not listed have no known cost."""
        return parse_costs(self.cost_per_message)

    def write_key_sources(self) -> dict[str, str]:
        """Map each accepted write key to the name of its source."""
        sources: dict[str, str] = {}
        for item in self.write_keys.split(","):
            item = item.strip()
            if not item:
                continue
            name, sep, key = item.partition("=")
            sources[key if sep else name] = name if sep else "default"
        return sources


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
            raise ValueError(
                f"{variable}: {item!r} should be channel=value, e.g. {example}"
            ) from None
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
    return parse_per_channel(
        text, "CARILLON_COST_PER_MESSAGE", "email=0.001,sms=0.07,meta_audience=0", _amount
    )


def parse_attribution_windows(text: str) -> dict[str, timedelta]:
    variable = "CARILLON_ATTRIBUTION_WINDOWS"
    example = "email=5d,sms=1d,meta_audience=7d (durations: 12h, 5d)"
    return known_channels(parse_per_channel(text, variable, example, parse_duration), variable)


def parse_attempts(text: str) -> dict[str, int]:
    return parse_per_channel(
        text, "CARILLON_DELIVERY_ATTEMPTS_PER_CHANNEL", "email=5,sms=3,meta_audience=8", _attempts
    )


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


def known_channels(parsed: dict[str, T], variable: str) -> dict[str, T]:
    """A misspelt channel would silently apply to nothing."""
    names = channel_names()
    for channel in parsed:
        if channel not in names:
            raise ValueError(f"{variable}: unknown channel {channel!r}; one of: {', '.join(names)}")
    return parsed


def parse_quiet_hours(text: str) -> dict[str, QuietHours]:
    variable = "CARILLON_QUIET_HOURS"
    example = "sms=21:00-08:00,email=22:00-07:00 (local HH:MM-HH:MM, start and end differ)"
    return known_channels(parse_per_channel(text, variable, example, _quiet_window), variable)


def parse_frequency_caps(text: str) -> dict[str, tuple[Cap, ...]]:
    variable = "CARILLON_FREQUENCY_CAPS"
    example = "email=1/24h+3/7d,sms=1/24h (count/duration, several joined with +)"
    return known_channels(parse_per_channel(text, variable, example, _caps), variable)


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
            raise ValueError(f"CARILLON_RATE_LIMITS: {item!r}: {problem}; {_RATE_EXAMPLE}")
        limits[channel] = Limit(int(count), seconds.total_seconds(), f"{count}/{period}")
    return limits


_RATE_EXAMPLE = "e.g. sms=20/s,email=100/s,meta_audience=200/h"


@lru_cache
def get_settings() -> Settings:
    return Settings()


# The providers' own variable names for their credentials (each also works with CARILLON_).
PROVIDER_CREDENTIAL_VARIABLES = (
    "SENDGRID_API_KEY",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_FROM_NUMBER",
    "TWILIO_MESSAGING_SERVICE_SID",
    "META_ACCESS_TOKEN",
)
