"""Twilio's Messages resource as it answers for a WhatsApp sender: the SMS stand-in (the
request checked against Twilio's OpenAPI document, its auth, errors and resource) with
WhatsApp's own rules on top.

- `To` and the sender are WhatsApp addresses together (`whatsapp:+E164`), else 21910.
- `ContentVariables` needs `ContentSid` (21654) and must be a JSON object (21656).
- Free text (`Body` without `ContentSid`) to a person outside their 24-hour window is accepted
  (201) and fails afterwards with 63016, as Twilio reports it in the status callback: the SID
  is kept in `outside_window`, so a test sees a text sent where only a template may go.
  `sessions` holds the addresses whose window is open.
"""

from __future__ import annotations

import json
from typing import Any

from tests.providers.server import RecordedRequest, Reply
from tests.providers.twilio import TwilioServer, coerce_form, error_reply

PREFIX = "whatsapp:"
TEST_WHATSAPP_FROM = "+14155238886"
TEST_CONTENT_SID = "HX" + "0123456789abcdef" * 2


class TwilioWhatsAppServer(TwilioServer):
    def __init__(self) -> None:
        super().__init__()
        self.sessions: set[str] = set()
        self.outside_window: list[str] = []

    def reset(self) -> None:
        super().reset()
        with self._condition:
            self.sessions.clear()
            self.outside_window.clear()

    def respond(self, request: RecordedRequest) -> Reply:
        form = request.body if isinstance(request.body, dict) else {}
        if self._authenticated(request):
            refusal = self._whatsapp_refusal(coerce_form(form))
            if refusal is not None:
                return refusal
        reply = super().respond(request)
        free_text = form.get("Body") and not form.get("ContentSid")
        if reply.status == 201 and free_text and form.get("To") not in self.sessions:
            with self._condition:
                self.outside_window.append(json.loads(reply.body)["sid"])
        return reply

    def _whatsapp_refusal(self, params: dict[str, Any]) -> Reply | None:
        to, sender = str(params.get("To") or ""), params.get("From")
        if sender is not None and to.startswith(PREFIX) != str(sender).startswith(PREFIX):
            return error_reply(
                400, 21910, "Invalid From and To pair. From and To should be of the same channel"
            )
        variables = params.get("ContentVariables")
        if variables is None:
            return None
        if not params.get("ContentSid"):
            return error_reply(
                400,
                21654,
                "A ContentSid must be specified if ContentVariables are provided in the request.",
            )
        try:
            parsed = json.loads(str(variables))
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            return error_reply(400, 21656, "The ContentVariables Parameter is invalid.")
        return None
