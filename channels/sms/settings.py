"""The SMS channel's settings: the Twilio account, and what only SMS needs.

`TwilioAccount` is the account alone; WhatsApp extends the same model with its own sender, so
the credentials are declared once. Credentials keep Twilio's own variable names
(`TWILIO_ACCOUNT_SID`, …, each also read with the CARILLON_ prefix).
"""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _twilio(name: str) -> AliasChoices:
    return AliasChoices(name, f"CARILLON_{name}")


class TwilioAccount(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CARILLON_", extra="ignore")

    twilio_account_sid: str | None = Field(
        default=None, validation_alias=_twilio("TWILIO_ACCOUNT_SID")
    )
    twilio_auth_token: str | None = Field(
        default=None, validation_alias=_twilio("TWILIO_AUTH_TOKEN")
    )
    twilio_base_url: str = "https://api.twilio.com"

    def has_account(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token)


class SmsSettings(TwilioAccount):
    twilio_from_number: str | None = Field(
        default=None, validation_alias=_twilio("TWILIO_FROM_NUMBER")
    )
    # Preferred over the number: Twilio picks the sender per country and handles STOP itself.
    twilio_messaging_service_sid: str | None = Field(
        default=None, validation_alias=_twilio("TWILIO_MESSAGING_SERVICE_SID")
    )
    # The answer to an SMS "HELP" (TwiML reply to Twilio's inbound webhook).
    sms_help_text: str = (
        "Messages marketing : STOP pour vous désabonner, START pour vous réabonner. "
        "Marketing messages: reply STOP to opt out, START to opt back in."
    )

    def has_sender(self) -> bool:
        return bool(self.twilio_from_number or self.twilio_messaging_service_sid)
