"""The WhatsApp channel's own settings: which WhatsApp sender Carillon writes from.

The Twilio account (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN) and its base URL are SMS's model,
extended here; the sender is not shared, because an SMS number is not a WhatsApp sender until it is
registered with Meta, and SMS going live must not make WhatsApp go live with it.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from channels.sms.settings import TwilioAccount

PREFIX = "whatsapp:"
_SENDER = re.compile(r"(?:whatsapp:)?(\+[1-9]\d{1,14})")
_MESSAGING_SERVICE = re.compile(r"MG[0-9a-fA-F]{32}")


class WhatsAppSettings(TwilioAccount):
    # The WhatsApp sender registered on the Twilio account, E.164; kept as `whatsapp:+…`.
    whatsapp_from: str | None = Field(default=None)
    # A Messaging Service with WhatsApp senders in its pool; preferred over `whatsapp_from`.
    whatsapp_messaging_service_sid: str | None = Field(default=None)

    @field_validator("whatsapp_from", "whatsapp_messaging_service_sid", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """`CARILLON_WHATSAPP_FROM=` in an env file means "not set"."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("whatsapp_from")
    @classmethod
    def _sender(cls, value: str | None) -> str | None:
        if value is None:
            return None
        matched = _SENDER.fullmatch(value.strip())
        if matched is None:
            raise ValueError(
                f"CARILLON_WHATSAPP_FROM: {value!r} is not a WhatsApp sender; write its number "
                "in E.164, e.g. +14155238886 (the whatsapp: prefix is optional)"
            )
        return PREFIX + matched[1]

    @field_validator("whatsapp_messaging_service_sid")
    @classmethod
    def _service(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _MESSAGING_SERVICE.fullmatch(value.strip()):
            raise ValueError(
                f"CARILLON_WHATSAPP_MESSAGING_SERVICE_SID: {value!r} is not a Messaging Service "
                "SID (MG followed by 32 hexadecimal digits)"
            )
        return value.strip()

    def has_sender(self) -> bool:
        return bool(self.whatsapp_from or self.whatsapp_messaging_service_sid)
