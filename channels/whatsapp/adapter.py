"""WhatsApp through Twilio's Programmable Messaging API (the same Messages resource as SMS,
`whatsapp:+E164` addresses), with the official `twilio` library.

Which form goes is decided here, at send time: free text when the person wrote to us within
the last 24 hours and the journey gave text, else the approved template (`ContentSid`,
`ContentVariables`); with only text and the window closed nothing is sent and the delivery
fails with the reason, since Twilio would refuse it (63016) and no retry can change that.

Twilio's refusals are read as for SMS, plus WhatsApp's own codes: 63016 (outside the window)
fails for good, 63018 (the channel's rate limit) is retried.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from twilio.base.exceptions import TwilioException

from app import clock
from app.settings import Settings
from channels.base import Feedback, Message, Outcome, SendResult
from channels.sms import adapter as sms
from channels.whatsapp import content, window
from channels.whatsapp.settings import PREFIX, WhatsAppSettings

STATUS_CALLBACK_PATH = "/webhooks/whatsapp/status"
OUTSIDE_WINDOW_CODE = 63016
# 63018: the sender's WhatsApp rate or messaging limit; 20429: Twilio's own throttling.
TRANSIENT_CODES = frozenset({63018, sms.TOO_MANY_REQUESTS_CODE})
# Twilio 21610: the number is on the sender's opt-out list.
OPTED_OUT = Feedback("whatsapp_opted_out", consent="opted_out")
FEEDBACK_CODES = {21211: sms.PHONE_INVALID, 21610: OPTED_OUT}


class TwilioWhatsApp:
    name = "whatsapp"

    def __init__(
        self,
        settings: Settings,
        own: WhatsAppSettings,
        last_inbound: Callable[[str], datetime | None] = window.last_inbound,
    ) -> None:
        if own.whatsapp_messaging_service_sid:
            self._sender = {"messaging_service_sid": own.whatsapp_messaging_service_sid}
        elif own.whatsapp_from:
            self._sender = {"from_": own.whatsapp_from}
        else:
            raise ValueError("TwilioWhatsApp needs whatsapp_from or whatsapp_messaging_service_sid")
        public_url = (settings.public_url or "").strip().rstrip("/")
        self._callback = (
            {"status_callback": f"{public_url}{STATUS_CALLBACK_PATH}"} if public_url else {}
        )
        self._last_inbound = last_inbound
        self._client = sms.twilio_client(settings, own)

    def close(self) -> None:
        sms.close_client(self._client)

    def send(self, message: Message) -> SendResult:
        phone = (message.recipient.phone or "").strip()
        who = message.recipient.profile_id
        if not phone:
            return SendResult(Outcome.FAILED, error=f"recipient {who} has no phone number")
        invalid = sms.phone_problem(phone)
        if invalid is not None:
            return SendResult(
                Outcome.FAILED, error=f"recipient {who}: {invalid}", feedback=(sms.PHONE_INVALID,)
            )
        session_open = window.is_open(self._last_inbound(who), clock.now())
        chosen = content.choose(message.content, session_open)
        if isinstance(chosen, str):
            return SendResult(Outcome.FAILED, error=chosen)
        return sms.created_by(
            lambda: self._client.messages.create(
                to=PREFIX + phone, **self._sender, **self._callback, **chosen
            ),
            _refused,
        )


def _refused(exc: TwilioException) -> SendResult:
    """Twilio's words as SMS reads them; WhatsApp's codes decide retries and what is learnt
    about the person."""
    result = sms.twilio_error(exc)
    code = getattr(exc, "code", None)
    error = f"{content.OUTSIDE_WINDOW} ({result.error})" if code == OUTSIDE_WINDOW_CODE else None
    return replace(
        result,
        error=error or result.error,
        transient=result.transient or code in TRANSIENT_CODES,
        feedback=(FEEDBACK_CODES[code],) if code in FEEDBACK_CODES else (),
    )
