"""The webhook channel's settings, read from the environment (prefix CARILLON_).

Secrets are kept per host: every URL a journey posts to must have its host listed in
CARILLON_WEBHOOK_SECRETS, so a URL built from event data can only reach an endpoint someone
gave a secret to, and nothing is ever sent unsigned.
"""

from __future__ import annotations

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from channels.webhook.addresses import canonical_host
from channels.webhook.signing import parse_secret

SECRETS = "CARILLON_WEBHOOK_SECRETS"
ALLOWED_HOSTS = "CARILLON_WEBHOOK_ALLOWED_HOSTS"


class WebhookSettings(BaseSettings):
    # A refusal never quotes the value: it holds secrets, and tracebacks end up in logs.
    model_config = SettingsConfigDict(
        env_prefix="CARILLON_", extra="ignore", hide_input_in_errors=True
    )

    # `host=whsec_…` items, comma-separated: the secret that signs every POST to that host
    # (the URL's host name or IP address, any port). A host listed twice is signed with both
    # secrets, for rotating one. Unset: the channel runs dry.
    webhook_secrets: SecretStr = SecretStr("")
    # Hosts, comma-separated, that may resolve to loopback, private, link-local or other
    # non-public addresses (an endpoint inside your own network), matched as written in the URL.
    webhook_allowed_hosts: str = ""

    @field_validator("webhook_secrets")
    @classmethod
    def _secrets_parse(cls, value: SecretStr) -> SecretStr:
        parse_secrets(value.get_secret_value())
        return value

    @field_validator("webhook_allowed_hosts")
    @classmethod
    def _hosts_parse(cls, value: str) -> str:
        parse_hosts(value)
        return value

    def secrets(self) -> dict[str, tuple[bytes, ...]]:
        return parse_secrets(self.webhook_secrets.get_secret_value())

    def allowed_hosts(self) -> frozenset[str]:
        return parse_hosts(self.webhook_allowed_hosts)


def parse_secrets(text: str) -> dict[str, tuple[bytes, ...]]:
    """Keys by canonical host. Errors name the item by its position and host, never by its
    secret."""
    keys: dict[str, tuple[bytes, ...]] = {}
    for number, item in enumerate((i.strip() for i in text.split(",") if i.strip()), start=1):
        written, sep, secret = (part.strip() for part in item.partition("="))
        where = f"{SECRETS}: item {number}"
        if not sep or not written:
            raise ValueError(f"{where} should be host=whsec_..., e.g. hooks.example.com=whsec_...")
        try:
            host = canonical_host(written)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        try:
            key = parse_secret(secret)
        except ValueError as exc:
            raise ValueError(f"{where} ({host}): {exc}") from None
        keys[host] = (*keys.get(host, ()), key)
    return keys


def parse_hosts(text: str) -> frozenset[str]:
    hosts: set[str] = set()
    for item in (i.strip() for i in text.split(",") if i.strip()):
        try:
            hosts.add(canonical_host(item))
        except ValueError as exc:
            raise ValueError(
                f"{ALLOWED_HOSTS}: {exc}; list host names or IP addresses, e.g. "
                "crm.internal,10.0.0.7"
            ) from None
    return frozenset(hosts)
