"""SMS through Twilio's Programmable Messaging API, with the official `twilio` library.

A Messaging Service is preferred over a single sender number when both are configured: it
picks the sender per destination country and handles opt-outs (STOP) on Twilio's side.
"""

from __future__ import annotations

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from app.settings import Settings
from channels._retry import is_transient_status
from channels.base import Message, Outcome, SendResult

# Twilio's "Too Many Requests" error code: its concurrency and rate limits answer with it.
TOO_MANY_REQUESTS_CODE = 20429
_SDK_PREFIXES = ("Unable to create record: ", "Unable to fetch record: ")


class TwilioSMS:
    name = "sms"

    def __init__(self, settings: Settings) -> None:
        sid, token = settings.twilio_account_sid, settings.twilio_auth_token
        if not sid or not token:
            raise ValueError("TwilioSMS needs twilio_account_sid and twilio_auth_token")
        if not settings.twilio_messaging_service_sid and not settings.twilio_from_number:
            raise ValueError("TwilioSMS needs twilio_from_number or twilio_messaging_service_sid")
        self._from_number = settings.twilio_from_number
        self._messaging_service_sid = settings.twilio_messaging_service_sid
        # `environment={}`: the settings are the one source of configuration; TWILIO_EDGE or
        # TWILIO_REGION in the environment would otherwise rewrite the configured host.
        self._client = Client(
            sid,
            token,
            http_client=TwilioHttpClient(timeout=settings.provider_timeout_seconds),
            environment={},
        )
        # The library builds every Messages URL from this domain's base URL at request time,
        # so a regional endpoint or a local stand-in only needs it replaced here.
        self._client.api.base_url = settings.twilio_base_url.rstrip("/")

    def send(self, message: Message) -> SendResult:
        phone = (message.recipient.phone or "").strip()
        if not phone:
            return SendResult(
                Outcome.FAILED,
                error=f"recipient {message.recipient.profile_id} has no phone number",
            )
        text = str(message.content.get("text") or "")
        if not text.strip():
            return SendResult(Outcome.FAILED, error="the SMS has no text")
        sender = (
            {"messaging_service_sid": self._messaging_service_sid}
            if self._messaging_service_sid
            else {"from_": self._from_number}
        )
        try:
            created = self._client.messages.create(to=phone, body=text, **sender)
        except TwilioRestException as exc:
            return _from_rest_exception(exc)
        except TwilioException as exc:
            return _from_other_exception(exc)
        except (requests.ConnectionError, requests.Timeout) as exc:
            return SendResult(
                Outcome.FAILED, error=f"Twilio unreachable: {type(exc).__name__}", transient=True
            )
        except requests.RequestException as exc:
            # A malformed base URL and the like: configuration, not a passing outage.
            return SendResult(Outcome.FAILED, error=f"Twilio request failed: {exc}")
        return SendResult(Outcome.SENT, provider_message_id=created.sid, status_code=201)


def _from_rest_exception(exc: TwilioRestException) -> SendResult:
    status = int(exc.status) if exc.status is not None else None
    text = str(exc.msg or "")
    for prefix in _SDK_PREFIXES:
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    code = exc.code
    if code is not None and code != status:
        text = f"{code}: {text}" if text else str(code)
    elif status is not None:
        text = f"HTTP {status}: {text}" if text else f"HTTP {status}"
    transient = is_transient_status(status) or code == TOO_MANY_REQUESTS_CODE
    return SendResult(Outcome.FAILED, error=text, status_code=status, transient=transient)


def _from_other_exception(exc: TwilioException) -> SendResult:
    """Newer Twilio APIs answer RFC 9457 problem details (TwilioServiceException)."""
    status_value = getattr(exc, "status", None)
    status = int(status_value) if isinstance(status_value, int) else None
    code = getattr(exc, "code", None)
    words = getattr(exc, "detail", None) or getattr(exc, "title", None) or str(exc)
    text = f"{code}: {words}" if code is not None else str(words)
    transient = is_transient_status(status) or code == TOO_MANY_REQUESTS_CODE
    return SendResult(Outcome.FAILED, error=text, status_code=status, transient=transient)
