"""The e-mail channel's settings: the SendGrid account and sender.

The API key keeps SendGrid's own variable name (`SENDGRID_API_KEY`, also read as
`CARILLON_SENDGRID_API_KEY`), so the value people already export for SendGrid's SDK just works.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from channels.email.keys import sendgrid_public_key


class SendGridSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CARILLON_", extra="ignore")

    sendgrid_api_key: str | None = Field(
        default=None, validation_alias=AliasChoices("SENDGRID_API_KEY", "CARILLON_SENDGRID_API_KEY")
    )
    sendgrid_base_url: str = "https://api.sendgrid.com"
    sendgrid_from_email: str = "no-reply@example.com"
    # The Event Webhook's verification key as SendGrid shows it (base64 DER, or PEM); unset:
    # every SendGrid webhook is refused, since an unsigned one could unsubscribe anybody.
    sendgrid_webhook_public_key: str | None = None

    @field_validator("sendgrid_webhook_public_key")
    @classmethod
    def _webhook_key_parses(cls, value: str | None) -> str | None:
        if value:
            sendgrid_public_key(value)  # a pasted key cut short fails at start, not per webhook
        return value
