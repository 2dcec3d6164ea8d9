"""All configuration, read once from the environment (prefix `CARILLON_`).

Provider credentials keep the providers' own variable names (`SENDGRID_API_KEY`, `TWILIO_*`,
`META_ACCESS_TOKEN`) so the values people already export for the official SDKs just work.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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

    sendgrid_base_url: str = "https://api.sendgrid.com"
    twilio_base_url: str = "https://api.twilio.com"
    meta_graph_url: str = "https://graph.facebook.com"
    meta_api_version: str = "v21.0"
    provider_timeout_seconds: float = 10.0
    # Retries of transient provider errors (timeouts, 429, 5xx): attempts per channel in all,
    # `email=5,sms=5,meta_audience=8`; a channel not named gets `delivery_max_attempts`.
    delivery_max_attempts: int = 5
    delivery_attempts_per_channel: str = ""
    # Exponential back-off with full jitter: base * 2**(attempt-1), capped; Retry-After wins.
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 600.0

    sendgrid_api_key: str | None = Field(
        default=None, validation_alias=AliasChoices("SENDGRID_API_KEY", "CARILLON_SENDGRID_API_KEY")
    )
    sendgrid_from_email: str = "no-reply@example.com"
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

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @field_validator("cost_per_message")
    @classmethod
    def _costs_parse(cls, value: str) -> str:
        parse_costs(value)  # refuse a bad value at start, not on the first dashboard view
        return value

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


def parse_costs(text: str) -> dict[str, float]:
    costs: dict[str, float] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        channel, sep, amount = item.partition("=")
        try:
            value = float(amount)
        except ValueError:
            value = -1.0
        if not sep or not channel.strip() or not 0 <= value < float("inf"):
            raise ValueError(
                f"CARILLON_COST_PER_MESSAGE: {item!r} should be channel=amount, "
                "e.g. email=0.001,sms=0.07,meta_audience=0"
            )
        costs[channel.strip()] = value
    return costs


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
