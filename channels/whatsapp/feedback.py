"""Twilio's WhatsApp callbacks: message status (`StatusCallback`, the same form as for SMS,
plus `read`) and inbound messages (the WhatsApp sender's "A message comes in" webhook, with
`From: whatsapp:+…`).

An inbound message opens the 24-hour window for the person whose phone identity wrote it, and
its keyword sets WhatsApp consent: Twilio handles no WhatsApp opt-out keyword itself, so a
STOP must be honoured here. Each message is kept once per MessageSid (the record of an
opt-out); a replay changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.orm import Session

from app import clock
from app.profiles import consent
from channels.sms import feedback as sms
from channels.sms.feedback import Malformed, StatusCallback
from channels.whatsapp import window
from channels.whatsapp.content import OUTSIDE_WINDOW
from channels.whatsapp.settings import PREFIX

log = logging.getLogger(__name__)

CHANNEL = "whatsapp"
SOURCE = "twilio-whatsapp"
# The opt-out words Twilio honours for SMS; opting back in takes START or UNSTOP only, since a
# "yes" in a WhatsApp conversation usually answers something else.
KEYWORDS = {
    **{word: state for word, state in sms.KEYWORDS.items() if state == "stop"},
    **dict.fromkeys(("START", "UNSTOP"), "start"),
}
_CONSENT = {"stop": "opted_out", "start": "opted_in"}
MAX_BODY = 4096  # WhatsApp's longest text message
# Twilio error codes a status callback may carry, spelled out in the history.
ERROR_WORDS = {
    "63016": OUTSIDE_WINDOW,
    "63018": "the sender's WhatsApp rate or messaging limit was reached",
    "63003": "the number is not on WhatsApp",
}


def apply_status(session: Session, callback: StatusCallback) -> bool:
    """True when recorded now; False for a replay, an unknown status or a message that is not
    one of our WhatsApp deliveries."""
    return sms.record_status(session, callback, CHANNEL, SOURCE, ERROR_WORDS)


@dataclass(frozen=True)
class Inbound:
    message_sid: str
    sender: str  # whatsapp:+E164
    body: str
    # A quick-reply button's payload: a template's opt-out button says STOP here.
    button_payload: str = ""

    @property
    def phone(self) -> str:
        return self.sender.removeprefix(PREFIX)

    @property
    def keyword(self) -> str | None:
        for said in (self.button_payload, self.body):
            found = KEYWORDS.get(said.strip().strip(".!").upper())
            if found:
                return found
        return None


def parse_inbound(params: dict[str, str]) -> Inbound:
    body, payload = params.get("Body", ""), params.get("ButtonPayload", "")
    if len(body) > MAX_BODY:
        raise Malformed(f"Body: longer than {MAX_BODY} characters")
    if len(payload) > MAX_BODY:
        raise Malformed(f"ButtonPayload: longer than {MAX_BODY} characters")
    message_sid, sender = sms._required(params, "MessageSid"), sms._required(params, "From")
    if not sender.startswith(PREFIX):
        raise Malformed(
            f"From: {sender!r} is not a WhatsApp address (whatsapp:+…); SMS go to "
            "/webhooks/twilio/inbound"
        )
    return Inbound(message_sid, sender, body, payload)


def apply_inbound(session: Session, inbound: Inbound) -> bool:
    """Keep the message, open the window, act on its keyword; False (nothing changed) for a
    replay."""
    now = clock.now()
    kept, profile_id = sms.keep_inbound(session, SOURCE, inbound, inbound.phone, now)
    if not kept:
        return False  # a replay
    if profile_id is None:
        log.info("whatsapp inbound %s from an unknown number: kept only", inbound.message_sid)
        return True
    window.record(session, profile_id, now, inbound.message_sid)
    state = _CONSENT.get(inbound.keyword or "")
    if state:
        consent.record(session, profile_id, CHANNEL, state, now, inbound.message_sid)
        log.info("profile %s: whatsapp %s (inbound %s)", profile_id, state, inbound.message_sid)
    return True
