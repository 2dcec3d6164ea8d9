"""TwilioSMS through the official library against the local Twilio stand-in."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable

import pytest

from app.settings import Settings
from channels.base import Message, Outcome, Recipient
from channels.settings import read
from channels.sms.adapter import OPTED_OUT, PHONE_INVALID, TwilioSMS
from channels.sms.settings import SmsSettings
from tests.providers.server import unused_port
from tests.providers.twilio import (
    TEST_ACCOUNT_SID,
    TEST_AUTH_TOKEN,
    TEST_FROM_NUMBER,
    TEST_MESSAGING_SERVICE_SID,
    TwilioServer,
    twilio_error,
)

TEXT = "Bienvenue ! -15 % avec le code BIENVENUE15."


def message(phone: str | None = "+33612345678", text: str = TEXT) -> Message:
    return Message(
        delivery_id="77",
        channel="sms",
        recipient=Recipient(profile_id="p-2", phone=phone),
        content={"text": text},
        journey_id="newsletter-welcome",
    )


@pytest.fixture
def channel(twilio_server: TwilioServer, make_settings: Callable[..., Settings]) -> TwilioSMS:
    return TwilioSMS(make_settings(**twilio_server.settings_overrides()), read(SmsSettings))


def test_sent_from_the_number_with_exactly_what_twilio_expects(
    channel: TwilioSMS, twilio_server: TwilioServer
) -> None:
    result = channel.send(message())

    assert result.outcome is Outcome.SENT, result.error
    assert result.provider_message_id is not None
    assert re.fullmatch(r"SM[0-9a-f]{32}", result.provider_message_id)
    assert result.provider_message_id == twilio_server.messages[0]["sid"]
    (request,) = twilio_server.requests
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Messages.json"
    expected_auth = base64.b64encode(f"{TEST_ACCOUNT_SID}:{TEST_AUTH_TOKEN}".encode()).decode()
    assert request.header("authorization") == f"Basic {expected_auth}"
    assert request.header("content-type") == "application/x-www-form-urlencoded"
    assert request.body == {"To": "+33612345678", "From": TEST_FROM_NUMBER, "Body": TEXT}


def test_messaging_service_is_preferred_over_the_number(
    twilio_server: TwilioServer, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(
        **{
            **twilio_server.settings_overrides(),
            "twilio_from_number": TEST_FROM_NUMBER,
            "twilio_messaging_service_sid": TEST_MESSAGING_SERVICE_SID,
        }
    )
    result = TwilioSMS(settings, read(SmsSettings)).send(message())
    assert result.outcome is Outcome.SENT, result.error
    assert twilio_server.requests[0].body == {
        "To": "+33612345678",
        "MessagingServiceSid": TEST_MESSAGING_SERVICE_SID,
        "Body": TEXT,
    }
    assert twilio_server.messages[0]["status"] == "accepted"


def test_wrong_token_is_a_permanent_failure(
    twilio_server: TwilioServer, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(**{**twilio_server.settings_overrides(), "twilio_auth_token": "nope"})
    result = TwilioSMS(settings, read(SmsSettings)).send(message())
    assert result.outcome is Outcome.FAILED
    assert (result.status_code, result.transient) == (401, False)
    assert result.error == "20003: Authenticate"


@pytest.mark.parametrize(
    ("phone", "reason"),
    [
        ("06 12 34 56 78", "not in E.164 form"),
        ("0612345678", "not in E.164 form"),
        ("+33 6 12 34 56 78", "not in E.164 form"),
        ("+3361234567899", "not a valid number"),
        ("+1650555121", "not a valid number"),
        ("+999123456", "cannot be read"),
        ("call me", "not in E.164 form"),
    ],
)
def test_invalid_numbers_fail_permanently_without_a_call_and_mark_the_phone(
    channel: TwilioSMS, twilio_server: TwilioServer, phone: str, reason: str
) -> None:
    result = channel.send(message(phone=phone))
    assert (result.outcome, result.transient, result.status_code) == (Outcome.FAILED, False, None)
    assert reason in (result.error or "")
    assert repr(phone) in (result.error or "")
    assert result.feedback == (PHONE_INVALID,)
    assert twilio_server.requests == []


def test_twilio_21211_is_permanent_and_marks_the_phone_invalid(
    channel: TwilioSMS, twilio_server: TwilioServer
) -> None:
    twilio_server.unreachable.add("+33612345678")  # well-formed, yet Twilio refuses it
    result = channel.send(message())
    assert (result.outcome, result.status_code, result.transient) == (Outcome.FAILED, 400, False)
    assert result.error == "21211: The 'To' number +33612345678 is not a valid phone number."
    assert result.feedback == (PHONE_INVALID,)
    assert len(twilio_server.requests) == 1


def test_twilio_21610_is_permanent_and_reports_the_opt_out(
    channel: TwilioSMS, twilio_server: TwilioServer
) -> None:
    twilio_server.unsubscribed.add("+33612345678")  # the person replied STOP
    result = channel.send(message())
    assert (result.outcome, result.status_code, result.transient) == (Outcome.FAILED, 400, False)
    assert result.error == "21610: Attempt to send to unsubscribed recipient"
    assert result.feedback == (OPTED_OUT,)
    assert twilio_server.messages == []


def test_every_message_asks_for_status_callbacks_when_the_public_url_is_set(
    twilio_server: TwilioServer, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(
        **twilio_server.settings_overrides(), public_url="https://carillon.example.com/"
    )
    result = TwilioSMS(settings, read(SmsSettings)).send(message())
    assert result.outcome is Outcome.SENT, result.error
    assert result.feedback == ()
    assert twilio_server.requests[0].body == {
        "To": "+33612345678",
        "From": TEST_FROM_NUMBER,
        "Body": TEXT,
        "StatusCallback": "https://carillon.example.com/webhooks/twilio/status",
    }


def test_too_many_requests_is_transient(channel: TwilioSMS, twilio_server: TwilioServer) -> None:
    twilio_server.fail_next(429, twilio_error(429, 20429, "Too Many Requests"))
    result = channel.send(message())
    assert (result.outcome, result.status_code, result.transient) == (Outcome.FAILED, 429, True)
    assert result.error == "20429: Too Many Requests"
    assert result.feedback == ()


def test_code_20429_is_transient_whatever_the_status(
    channel: TwilioSMS, twilio_server: TwilioServer
) -> None:
    twilio_server.fail_next(400, twilio_error(400, 20429, "Too Many Requests"))
    assert channel.send(message()).transient is True


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, twilio_error(500, 20500, "Internal Server Error")),
        (503, "<html>Service Unavailable</html>"),
    ],
)
def test_server_errors_are_transient(
    channel: TwilioSMS, twilio_server: TwilioServer, status: int, body: object
) -> None:
    twilio_server.fail_next(status, body)
    result = channel.send(message())
    assert (result.outcome, result.status_code, result.transient) == (
        Outcome.FAILED,
        status,
        True,
    )
    assert result.error


def test_other_refusals_are_permanent_and_say_nothing_about_the_person(
    channel: TwilioSMS, twilio_server: TwilioServer
) -> None:
    words = "Permission to send an SMS has not been enabled for the region indicated by the 'To'"
    twilio_server.fail_next(400, twilio_error(400, 21408, words))
    result = channel.send(message())
    assert (result.transient, result.error, result.feedback) == (False, f"21408: {words}", ())


def test_connection_refused_is_transient(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        twilio_account_sid=TEST_ACCOUNT_SID,
        twilio_auth_token=TEST_AUTH_TOKEN,
        twilio_from_number=TEST_FROM_NUMBER,
        twilio_base_url=f"http://127.0.0.1:{unused_port()}",
    )
    result = TwilioSMS(settings, read(SmsSettings)).send(message())
    assert (result.outcome, result.transient, result.status_code) == (Outcome.FAILED, True, None)
    assert "unreachable" in (result.error or "")


def test_timeout_is_the_configured_one_and_transient(
    twilio_server: TwilioServer, make_settings: Callable[..., Settings]
) -> None:
    channel = TwilioSMS(
        make_settings(**twilio_server.settings_overrides(), provider_timeout_seconds=0.3),
        read(SmsSettings),
    )
    twilio_server.fail_next(201, {"sid": "SM" + "0" * 32}, delay_seconds=10)
    started = time.monotonic()
    result = channel.send(message())
    assert time.monotonic() - started < 5
    assert (result.outcome, result.transient) == (Outcome.FAILED, True)


@pytest.mark.parametrize(
    ("phone", "text", "reason"),
    [
        (None, TEXT, "no phone number"),
        ("", TEXT, "no phone number"),
        ("+33612345678", " ", "no text"),
    ],
)
def test_unsendable_messages_fail_permanently_without_a_call(
    channel: TwilioSMS, twilio_server: TwilioServer, phone: str | None, text: str, reason: str
) -> None:
    result = channel.send(message(phone=phone, text=text))
    assert (result.outcome, result.transient) == (Outcome.FAILED, False)
    assert reason in (result.error or "")
    assert twilio_server.requests == []
