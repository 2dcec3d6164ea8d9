"""SMS through Twilio: what the rest of Carillon knows about this channel."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import time
from typing import Any

from fastapi import APIRouter

from app.settings import QuietHours, Settings
from channels.base import Channel, ChannelSpec, Consent, Option, Refusal
from channels.settings import read
from channels.sms import feedback, webhooks
from channels.sms.adapter import TwilioSMS
from channels.sms.segments import MAX_SEGMENTS, measure
from channels.sms.settings import SmsSettings

STATES = frozenset({"opted_in", "opted_out"})


def _refusal(traits: Mapping[str, Any]) -> str | None:
    """SMS needs an explicit opt-in (TCPA); a number Twilio refused (21211) needs
    `phone_valid: true` again."""
    if traits.get("phone_valid") is False:
        return "phone invalid"
    state = traits.get("sms_consent")
    state = state if isinstance(state, str) and state in STATES else None
    if state is None and traits.get("sms_opt_in") is True:
        state = "opted_in"
    if state == "opted_in":
        return None
    return "sms opted out" if state == "opted_out" else "sms requires explicit opt-in"


def _credentials(settings: Settings) -> bool:
    own = read(SmsSettings)
    return own.has_account() and own.has_sender()


def _build(settings: Settings) -> Channel:
    return TwilioSMS(settings, read(SmsSettings))


def _account(settings: Settings) -> str | None:
    return read(SmsSettings).twilio_account_sid if _credentials(settings) else None


def _max_segments(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_SEGMENTS:
        return int(value)
    raise ValueError(f"max_segments must be a whole number from 1 to {MAX_SEGMENTS}")


def _limit(content: Mapping[str, str], options: Mapping[str, Any]) -> Refusal | None:
    most = options.get("max_segments")
    if most is None or "text" not in content:
        return None
    size = measure(content["text"])
    if size.segments <= most:
        return None
    return Refusal(
        "text",
        f"the SMS is {size.describe()}; max_segments is {most}",
        "shorten the text (a character outside GSM-7 makes the whole SMS UCS-2), "
        "or raise max_segments",
    )


def _describe(content: Mapping[str, str]) -> str:
    return measure(content["text"]).describe()


def _units(content: Mapping[str, Any]) -> int:
    """Twilio bills an SMS per segment: 160 GSM-7 characters alone, 153 each when split."""
    text = content.get("text")
    return measure(text).segments if isinstance(text, str) else 1


def _routers() -> tuple[APIRouter, ...]:
    return (webhooks.router,)


SPEC = ChannelSpec(
    name="sms",
    provider="Twilio",
    description="A text message through Twilio.",
    address="phone",
    required_content=frozenset({"text"}),
    consent=Consent("sms", "sms_consent", STATES, _refusal, "opted_out"),
    credentials=_credentials,
    build=_build,
    rate_limit_account=_account,
    options={
        "max_segments": Option(
            _max_segments,
            "the most SMS segments the text may take, e.g. max_segments: 1",
            {
                "description": "The most segments the rendered SMS may take (GSM-7: 160 "
                "characters alone, 153 per segment; UCS-2: 70 and 67); a longer one is not "
                "sent.",
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_SEGMENTS,
            },
        )
    },
    limit=_limit,
    content_schema={"text": {"description": "The SMS itself. A Jinja2 template."}},
    describe=_describe,
    cost_unit="segment",
    units=_units,
    feedback_kinds={"delivered": "delivered"},
    feedback_sources=(feedback.SOURCE,),
    routers=_routers,
    settings=SmsSettings,
    quiet_hours=QuietHours(time(21), time(8)),
    position=20,
)
