"""The one list of channels: which adapter serves each, and what content each needs.

A channel gets its real adapter only when all its credentials are set; otherwise it runs dry,
so a half-configured provider never half-sends. The journey loader validates `send` steps
against `required_content`, so a journey cannot reach a channel with a missing field.
"""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType

from app.settings import Settings
from channels.base import Channel
from channels.dry_run import DryRun
from channels.meta_audience import MetaCustomAudience
from channels.sendgrid_email import SendGridEmail
from channels.twilio_sms import TwilioSMS

CHANNEL_NAMES: tuple[str, ...] = ("email", "sms", "meta_audience")

_REQUIRED_CONTENT: MappingProxyType[str, frozenset[str]] = MappingProxyType(
    {
        "email": frozenset({"subject", "html", "text"}),
        "sms": frozenset({"text"}),
        "meta_audience": frozenset({"audience_id"}),
    }
)


def required_content(channel: str) -> set[str]:
    """The content keys a `send` step on this channel must provide."""
    try:
        return set(_REQUIRED_CONTENT[channel])
    except KeyError:
        raise ValueError(
            f"unknown channel {channel!r}; one of: {', '.join(CHANNEL_NAMES)}"
        ) from None


def has_credentials(channel: str, settings: Settings) -> bool:
    if channel == "email":
        return bool(settings.sendgrid_api_key)
    if channel == "sms":
        return bool(
            settings.twilio_account_sid
            and settings.twilio_auth_token
            and (settings.twilio_from_number or settings.twilio_messaging_service_sid)
        )
    if channel == "meta_audience":
        return bool(settings.meta_access_token)
    raise ValueError(f"unknown channel {channel!r}; one of: {', '.join(CHANNEL_NAMES)}")


_ADAPTERS: dict[str, Callable[[Settings], Channel]] = {
    "email": SendGridEmail,
    "sms": TwilioSMS,
    "meta_audience": MetaCustomAudience,
}


def build_channels(settings: Settings) -> dict[str, Channel]:
    """One adapter per channel name: the provider's when configured, else a dry run."""
    return {
        name: _ADAPTERS[name](settings) if has_credentials(name, settings) else DryRun(name)
        for name in CHANNEL_NAMES
    }
