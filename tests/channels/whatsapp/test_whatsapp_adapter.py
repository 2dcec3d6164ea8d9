"""TwilioWhatsApp through the official library against the local Twilio stand-in: which form
goes for the window, what Twilio receives, and how its refusals are read."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from app import clock
from app.clock import ManualClock
from app.settings import Settings
from channels.base import Message, Outcome, Recipient
from channels.sms.adapter import PHONE_INVALID
from channels.whatsapp.adapter import OPTED_OUT, TwilioWhatsApp
from channels.whatsapp.content import OUTSIDE_WINDOW
from channels.whatsapp.settings import WhatsAppSettings
from tests.channels.whatsapp.conftest import PHONE, PUBLIC_URL
from tests.channels.whatsapp.twilio_whatsapp import (
    TEST_CONTENT_SID,
    TEST_WHATSAPP_FROM,
    TwilioWhatsAppServer,
)
from tests.providers.server import unused_port
from tests.providers.twilio import TEST_MESSAGING_SERVICE_SID, twilio_error

TO = f"whatsapp:{PHONE}"
SENDER = f"whatsapp:{TEST_WHATSAPP_FROM}"
TEXT = "Bonjour Ada, votre colis est parti."
VARIABLES = '{"1":"Ada","2":"BIENVENUE15"}'
BOTH = {"text": TEXT, "content_sid": TEST_CONTENT_SID, "variables": VARIABLES}
TEMPLATE = {"content_sid": TEST_CONTENT_SID, "variables": VARIABLES}
TEXT_ONLY = {"text": TEXT}
# When the person last wrote, by profile id; the adapter reads it at send time.
WROTE: dict[str, datetime] = {}


def message(content: dict[str, str], phone: str | None = PHONE) -> Message:
    return Message(
        delivery_id="41",
        channel="whatsapp",
        recipient=Recipient(profile_id="p-ada", phone=phone),
        content=content,
        journey_id="shipped",
    )


@pytest.fixture
def at_t0(manual_clock: ManualClock) -> ManualClock:
    WROTE.clear()
    return manual_clock


@pytest.fixture
def make_channel(twilio: TwilioWhatsAppServer, at_t0: ManualClock) -> Callable[..., TwilioWhatsApp]:
    def build(**own: str | None) -> TwilioWhatsApp:
        settings = Settings(public_url=own.pop("public_url", None), provider_timeout_seconds=5.0)
        account = {
            "twilio_account_sid": twilio.account_sid,
            "twilio_auth_token": twilio.auth_token,
            "twilio_base_url": twilio.base_url,
        }
        sender = {"whatsapp_from": TEST_WHATSAPP_FROM, "whatsapp_messaging_service_sid": None}
        return TwilioWhatsApp(settings, WhatsAppSettings(**{**account, **sender, **own}), WROTE.get)

    return build


@pytest.fixture
def channel(make_channel: Callable[..., TwilioWhatsApp]) -> TwilioWhatsApp:
    return make_channel()


def wrote(ago: timedelta) -> None:
    WROTE["p-ada"] = clock.now() - ago


def test_outside_the_window_the_template_goes_as_twilio_expects(
    channel: TwilioWhatsApp, twilio: TwilioWhatsAppServer
) -> None:
    result = channel.send(message(BOTH))

    assert result.outcome is Outcome.SENT, result.error
    assert result.provider_message_id == twilio.messages[0]["sid"]
    (request,) = twilio.requests
    assert request.path == f"/2010-04-01/Accounts/{twilio.account_sid}/Messages.json"
    assert request.body == {
        "To": TO,
        "From": SENDER,
        "ContentSid": TEST_CONTENT_SID,
        "ContentVariables": VARIABLES,
    }
    assert json.loads(request.body["ContentVariables"]) == {"1": "Ada", "2": "BIENVENUE15"}
    assert twilio.outside_window == []


def test_inside_the_window_the_text_goes(
    channel: TwilioWhatsApp, twilio: TwilioWhatsAppServer
) -> None:
    wrote(timedelta(hours=3))
    twilio.sessions.add(TO)
    result = channel.send(message(BOTH))
    assert result.outcome is Outcome.SENT, result.error
    assert twilio.requests[0].body == {"To": TO, "From": SENDER, "Body": TEXT}
    assert twilio.outside_window == []


def test_inside_the_window_a_template_alone_still_goes(
    channel: TwilioWhatsApp, twilio: TwilioWhatsAppServer
) -> None:
    wrote(timedelta(minutes=1))
    assert channel.send(message({"content_sid": TEST_CONTENT_SID})).outcome is Outcome.SENT
    assert twilio.requests[0].body == {"To": TO, "From": SENDER, "ContentSid": TEST_CONTENT_SID}


@pytest.mark.parametrize("ago", [timedelta(hours=24), timedelta(hours=23, minutes=56), None])
def test_text_alone_outside_the_window_fails_for_good_without_a_call(
    channel: TwilioWhatsApp, twilio: TwilioWhatsAppServer, ago: timedelta | None
) -> None:
    """Closed: never written, a day ago, or within the last minutes of the window."""
    if ago is not None:
        wrote(ago)
    result = channel.send(message(TEXT_ONLY))
    assert (result.outcome, result.error, result.transient) == (
        Outcome.FAILED,
        OUTSIDE_WINDOW,
        False,
    )
    assert twilio.requests == []


def test_a_window_said_to_open_in_the_future_is_not_believed(
    channel: TwilioWhatsApp, twilio: TwilioWhatsAppServer
) -> None:
    wrote(-timedelta(hours=2))
    assert channel.send(message(BOTH)).outcome is Outcome.SENT
    assert "ContentSid" in twilio.requests[0].body


def test_the_messaging_service_is_preferred_and_status_callbacks_are_asked_for(
    make_channel: Callable[..., TwilioWhatsApp], twilio: TwilioWhatsAppServer
) -> None:
    channel = make_channel(
        whatsapp_messaging_service_sid=TEST_MESSAGING_SERVICE_SID, public_url=PUBLIC_URL
    )
    assert channel.send(message(TEMPLATE)).outcome is Outcome.SENT
    assert twilio.requests[0].body == {
        "To": TO,
        "MessagingServiceSid": TEST_MESSAGING_SERVICE_SID,
        "StatusCallback": f"{PUBLIC_URL}/webhooks/whatsapp/status",
        "ContentSid": TEST_CONTENT_SID,
        "ContentVariables": VARIABLES,
    }


@pytest.mark.parametrize("phone", [None, "06 12 34 56 78", "+3361234567899"])
def test_a_missing_or_invalid_number_costs_no_call(
    channel: TwilioWhatsApp, twilio: TwilioWhatsAppServer, phone: str | None
) -> None:
    result = channel.send(message(TEMPLATE, phone=phone))
    assert result.outcome is Outcome.FAILED and not result.transient
    assert result.feedback == (() if phone is None else (PHONE_INVALID,))
    assert twilio.requests == []


def test_63016_outside_the_window_fails_for_good_with_the_reason(
    channel: TwilioWhatsApp, twilio: TwilioWhatsAppServer
) -> None:
    """Our record said open, Twilio's said closed (the person wrote to another sender)."""
    wrote(timedelta(hours=1))
    twilio.fail_next(
        400, twilio_error(400, 63016, "Failed to send freeform message because you are outside")
    )
    result = channel.send(message(TEXT_ONLY))
    assert result.outcome is Outcome.FAILED and not result.transient
    assert result.error is not None and result.error.startswith(OUTSIDE_WINDOW)
    assert "63016: Failed to send freeform message" in result.error


@pytest.mark.parametrize(
    ("status", "code"),
    [(429, 63018), (400, 63018), (429, 20429), (429, 429), (503, 20500)],
)
def test_rate_limits_and_outages_are_retried(
    channel: TwilioWhatsApp, twilio: TwilioWhatsAppServer, status: int, code: int
) -> None:
    twilio.fail_next(status, twilio_error(status, code, "Too many requests"))
    result = channel.send(message(TEMPLATE))
    assert (result.outcome, result.transient, result.status_code) == (
        Outcome.FAILED,
        True,
        status,
    )
    assert str(code) in (result.error or "")


@pytest.mark.parametrize(
    ("code", "feedback"), [(21211, (PHONE_INVALID,)), (21610, (OPTED_OUT,)), (20003, ())]
)
def test_refusals_fail_for_good_and_say_what_they_learnt(
    channel: TwilioWhatsApp, twilio: TwilioWhatsAppServer, code: int, feedback: tuple[object]
) -> None:
    twilio.fail_next(400, twilio_error(400, code, "Refused"))
    result = channel.send(message(TEMPLATE))
    assert (result.outcome, result.transient, result.feedback) == (Outcome.FAILED, False, feedback)
    assert result.error == f"{code}: Refused"


def test_twilio_unreachable_is_retried(make_channel: Callable[..., TwilioWhatsApp]) -> None:
    own = WhatsAppSettings(
        twilio_account_sid="AC" + "0" * 32,
        twilio_auth_token="token",
        twilio_base_url=f"http://127.0.0.1:{unused_port()}",
        whatsapp_from=TEST_WHATSAPP_FROM,
    )
    channel = TwilioWhatsApp(Settings(provider_timeout_seconds=2.0), own, WROTE.get)
    result = channel.send(message(TEMPLATE))
    assert (result.outcome, result.transient) == (Outcome.FAILED, True)
    assert result.error == "Twilio unreachable: ConnectionError"


def test_the_stand_in_holds_the_adapter_to_whatsapp_rules(
    make_channel: Callable[..., TwilioWhatsApp], twilio: TwilioWhatsAppServer
) -> None:
    """The stand-in refuses what Twilio refuses, so the tests above could fail: an SMS sender
    writing to a WhatsApp address, and variables that are not a JSON object."""
    sms_sender = TwilioWhatsApp(
        Settings(),
        WhatsAppSettings.model_construct(
            twilio_account_sid=twilio.account_sid,
            twilio_auth_token=twilio.auth_token,
            twilio_base_url=twilio.base_url,
            whatsapp_from="+15005550006",
            whatsapp_messaging_service_sid=None,
        ),
        WROTE.get,
    )
    assert sms_sender.send(message(TEMPLATE)).error == (
        "21910: Invalid From and To pair. From and To should be of the same channel"
    )
    channel = make_channel()
    assert channel.send(message({**TEMPLATE, "variables": "[1]"})).error == (
        "21656: The ContentVariables Parameter is invalid."
    )
