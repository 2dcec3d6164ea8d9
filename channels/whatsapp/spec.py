"""WhatsApp through Twilio: what the rest of Carillon knows about this channel."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter

from app.settings import Settings
from channels.base import Channel, ChannelSpec, Consent
from channels.settings import read
from channels.whatsapp import content, feedback, webhooks
from channels.whatsapp.adapter import TwilioWhatsApp
from channels.whatsapp.settings import WhatsAppSettings

STATES = frozenset({"opted_in", "opted_out"})


def _refusal(traits: Mapping[str, Any]) -> str | None:
    """WhatsApp needs the person's explicit opt-in to messages from this business on WhatsApp
    (Meta's WhatsApp Business Messaging Policy; GDPR consent); a number Twilio refused as
    invalid (21211) needs `phone_valid: true` again."""
    if traits.get("phone_valid") is False:
        return "phone invalid"
    state = traits.get("whatsapp_consent")
    if state == "opted_in":
        return None
    return "whatsapp opted out" if state == "opted_out" else "whatsapp requires explicit opt-in"


def _credentials(settings: Settings) -> bool:
    own = read(WhatsAppSettings)
    return own.has_account() and own.has_sender()


def _build(settings: Settings) -> Channel:
    return TwilioWhatsApp(settings, read(WhatsAppSettings))


def _account(settings: Settings) -> str | None:
    return read(WhatsAppSettings).twilio_account_sid if _credentials(settings) else None


def _routers() -> tuple[APIRouter, ...]:
    return (webhooks.router,)


SPEC = ChannelSpec(
    name="whatsapp",
    provider="Twilio",
    description="A WhatsApp message through Twilio: an approved template at any time, or "
    "free text inside the 24-hour window after the person last wrote.",
    address="phone",
    # Each may be left out of a `messages:` variant; at least one of content_sid and text
    # must render (checked when the message is rendered).
    required_content=content.KEYS,
    generated_content=content.KEYS,
    consent=Consent("whatsapp", "whatsapp_consent", STATES, _refusal, "opted_out"),
    credentials=_credentials,
    build=_build,
    rate_limit_account=_account,
    finish=content.finish,
    describe=content.describe,
    content_schema={
        "content_sid": {
            "description": "The approved WhatsApp template to send, its Twilio Content SID "
            "(HX and 32 hexadecimal digits). Sent outside the 24-hour window, and inside it "
            "when there is no text.",
            "pattern": r"^HX[0-9a-fA-F]{32}$|\{",
        },
        "variables": {
            "description": "The template's variables: a Jinja2 template that renders to a JSON "
            f"object, e.g. {content.VARIABLES_EXAMPLE}. Needs content_sid."
        },
        "text": {
            "description": "Free text, sent instead of the template while the person's last "
            "WhatsApp message is less than 24 hours old. A Jinja2 template."
        },
    },
    feedback_kinds={"delivered": "delivered", "opened": "read"},
    feedback_sources=(feedback.SOURCE,),
    routers=_routers,
    settings=WhatsAppSettings,
    position=25,
)
