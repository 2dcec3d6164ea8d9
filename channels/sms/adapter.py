"""SMS through Twilio's Programmable Messaging API, with the official `twilio` library.

A Messaging Service is preferred over a single sender number when both are configured: it
picks the sender per destination country and handles opt-outs (STOP) on Twilio's side.

Numbers are checked (E.164, and a valid number per `phonenumbers`) before any call, so a typo
costs no API request. Two refusals say something about the person, not only the message:
21211 (invalid 'To' number) and 21610 (the recipient replied STOP); the result carries them as
`feedback`, which the delivery service writes to the profile.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import aiohttp
import phonenumbers
import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http import HttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from twilio.rest.api.v2010.account.message import MessageInstance

from app.settings import Settings
from channels._async_http import UNREACHABLE, unreachable_reason
from channels._retry import is_transient_status
from channels.base import Feedback, Message, Outcome, SendResult
from channels.sms.async_http import AiohttpTwilioClient
from channels.sms.settings import SmsSettings, TwilioAccount

# Twilio's "Too Many Requests" error code: its concurrency and rate limits answer with it.
TOO_MANY_REQUESTS_CODE = 20429
# Twilio error codes that are facts about the recipient (twilio.com/docs/errors/<code>).
# Twilio 21211 (or not a valid E.164 number at all): later SMS wait for `phone_valid: true`.
PHONE_INVALID = Feedback("phone_invalid", traits={"phone_valid": False})
# Twilio 21610: the person replied STOP.
OPTED_OUT = Feedback("sms_opted_out", consent="opted_out")
FEEDBACK_CODES = {21211: PHONE_INVALID, 21610: OPTED_OUT}
STATUS_CALLBACK_PATH = "/webhooks/twilio/status"
_E164 = re.compile(r"\+[1-9]\d{1,14}")
_SDK_PREFIXES = ("Unable to create record: ", "Unable to fetch record: ")


def twilio_client(
    settings: Settings, account: TwilioAccount, http_client: HttpClient | None = None
) -> Client:
    """The official client, configured by the settings alone: `environment={}` keeps
    TWILIO_EDGE or TWILIO_REGION from rewriting the configured host, and the library builds
    every Messages URL from the domain's base URL at request time, so a regional endpoint or a
    local stand-in only needs it replaced here."""
    if not account.has_account():
        raise ValueError("Twilio needs twilio_account_sid and twilio_auth_token")
    client = Client(
        account.twilio_account_sid,
        account.twilio_auth_token,
        http_client=http_client or TwilioHttpClient(timeout=settings.provider_timeout_seconds),
        environment={},
    )
    client.api.base_url = account.twilio_base_url.rstrip("/")
    return client


def close_client(client: Client) -> None:
    """Close the pooled HTTP connections the client keeps to Twilio."""
    session = getattr(client.http_client, "session", None)
    if session is not None:
        session.close()


class TwilioSMS:
    name = "sms"

    def __init__(self, settings: Settings, own: SmsSettings) -> None:
        if not own.has_sender():
            raise ValueError("TwilioSMS needs twilio_from_number or twilio_messaging_service_sid")
        self._from_number = own.twilio_from_number
        public_url = (settings.public_url or "").strip().rstrip("/")
        self._status_callback = f"{public_url}{STATUS_CALLBACK_PATH}" if public_url else None
        self._messaging_service_sid = own.twilio_messaging_service_sid
        self._client = twilio_client(settings, own)
        self._settings, self._own = settings, own
        self._connections = settings.send_concurrency
        self._async_client: Client | None = None

    def close(self) -> None:
        close_client(self._client)

    def _prepared(self, message: Message) -> SendResult | dict[str, str]:
        """The request's fields, or the refusal that makes a call pointless."""
        phone = (message.recipient.phone or "").strip()
        if not phone:
            return SendResult(
                Outcome.FAILED,
                error=f"recipient {message.recipient.profile_id} has no phone number",
            )
        invalid = phone_problem(phone)
        if invalid is not None:
            return SendResult(
                Outcome.FAILED,
                error=f"recipient {message.recipient.profile_id}: {invalid}",
                feedback=(PHONE_INVALID,),
            )
        text = str(message.content.get("text") or "")
        if not text.strip():
            return SendResult(Outcome.FAILED, error="the SMS has no text")
        fields: dict[str, str] = (
            {"messaging_service_sid": self._messaging_service_sid}
            if self._messaging_service_sid
            else {"from_": self._from_number or ""}
        )
        if self._status_callback:
            fields["status_callback"] = self._status_callback
        return {"to": phone, "body": text, **fields}

    def send(self, message: Message) -> SendResult:
        fields = self._prepared(message)
        if isinstance(fields, SendResult):
            return fields
        return created_by(lambda: self._client.messages.create(**fields))

    async def send_async(self, message: Message) -> SendResult:
        """`send` on the workers' sending loop: the same request and the same answers, many
        in flight over one pool of connections (opened on first use, on that loop)."""
        fields = self._prepared(message)
        if isinstance(fields, SendResult):
            return fields
        if self._async_client is None:
            self._async_client = twilio_client(
                self._settings,
                self._own,
                AiohttpTwilioClient(self._settings.provider_timeout_seconds, self._connections),
            )
        try:
            created = await self._async_client.messages.create_async(**fields)
        except TwilioException as exc:
            return twilio_error(exc)
        except UNREACHABLE as exc:
            return SendResult(
                Outcome.FAILED,
                error=f"Twilio unreachable: {unreachable_reason(exc)}",
                transient=True,
            )
        except aiohttp.ClientError as exc:
            # A malformed base URL and the like: configuration, not a passing outage.
            return SendResult(Outcome.FAILED, error=f"Twilio request failed: {exc}")
        return SendResult(Outcome.SENT, provider_message_id=created.sid, status_code=201)

    async def aclose(self) -> None:
        client, self._async_client = self._async_client, None
        if client is not None and isinstance(client.http_client, AiohttpTwilioClient):
            await client.http_client.close()


def phone_problem(phone: str) -> str | None:
    """Why Twilio would refuse this number, or None. Only E.164 is accepted (what Twilio asks
    for and what profiles store): a national form like 06 12 34 56 78 is ambiguous."""
    if not _E164.fullmatch(phone):
        return f"phone number {phone!r} is not in E.164 form (e.g. +33612345678)"
    try:
        parsed = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException as exc:
        return f"phone number {phone!r} cannot be read: {exc}"
    if not phonenumbers.is_valid_number(parsed):
        return f"phone number {phone!r} is not a valid number"
    return None


def created_by(
    create: Callable[[], MessageInstance],
    refused: Callable[[TwilioException], SendResult] | None = None,
) -> SendResult:
    """A blocking `messages.create` (SMS and WhatsApp share Twilio's Messages API), its answer
    or its failure as a result; `refused` reads Twilio's refusal (default: `twilio_error`)."""
    try:
        created = create()
    except TwilioException as exc:
        return (refused or twilio_error)(exc)
    except (requests.ConnectionError, requests.Timeout) as exc:
        return SendResult(
            Outcome.FAILED, error=f"Twilio unreachable: {type(exc).__name__}", transient=True
        )
    except requests.RequestException as exc:
        # A malformed base URL and the like: configuration, not a passing outage.
        return SendResult(Outcome.FAILED, error=f"Twilio request failed: {exc}")
    return SendResult(Outcome.SENT, provider_message_id=created.sid, status_code=201)


def twilio_error(exc: TwilioException) -> SendResult:
    """Twilio's refusal as a result: an API error's code and words, or a problem details'."""
    if isinstance(exc, TwilioRestException):
        return _from_rest_exception(exc)
    return _from_other_exception(exc)


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
    feedback = (FEEDBACK_CODES[code],) if code in FEEDBACK_CODES else ()
    return SendResult(
        Outcome.FAILED, error=text, status_code=status, transient=transient, feedback=feedback
    )


def _from_other_exception(exc: TwilioException) -> SendResult:
    """Newer Twilio APIs answer RFC 9457 problem details (TwilioServiceException)."""
    status_value = getattr(exc, "status", None)
    status = int(status_value) if isinstance(status_value, int) else None
    code = getattr(exc, "code", None)
    words = getattr(exc, "detail", None) or getattr(exc, "title", None) or str(exc)
    text = f"{code}: {words}" if code is not None else str(words)
    transient = is_transient_status(status) or code == TOO_MANY_REQUESTS_CODE
    return SendResult(Outcome.FAILED, error=text, status_code=status, transient=transient)
