"""WhatsApp journeys through the real pipeline: written in YAML, routed, planned, sent to the
Twilio stand-in by the delivery service, with the window opened by a signed inbound webhook
and consent set by identify traits and STOP."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.clock import ManualClock
from app.db import session_scope
from app.delivery import history, models
from app.journeys import catalog
from app.journeys.language.files import JourneyInvalid, parse_journey
from app.ops import kpis
from app.webhooks.models import InboundMessage
from channels.whatsapp.content import OUTSIDE_WINDOW
from channels.whatsapp.window import TRAIT
from tests.channels.whatsapp.conftest import PHONE, signed_post
from tests.channels.whatsapp.twilio_whatsapp import TEST_CONTENT_SID, TwilioWhatsAppServer
from tests.helpers import (
    T0,
    Pipeline,
    deliver,
    deliveries,
    held,
    load,
    route,
    track_now,
    traits_of,
)

TO = f"whatsapp:{PHONE}"
HEAD = "id: shipped\nname: Shipped\ntrigger: {event: Order Shipped}\nre_entry: always\n"
VARIABLES = (
    """'{"1": {{ profile.traits.first_name | tojson }}, "2": "{{ event.properties.order }}"}'"""
)
TEMPLATE_AND_TEXT = f"""{HEAD}messages:
  shipped:
    whatsapp:
      content_sid: {TEST_CONTENT_SID}
      variables: {VARIABLES}
      text: "Bonjour {{{{ profile.traits.first_name }}}}, la commande
        {{{{ event.properties.order }}}} est partie."
steps:
  - send: {{channel: whatsapp, message: shipped}}
"""
TEXT_ONLY = f"""{HEAD}messages:
  shipped:
    whatsapp: {{text: "Votre commande est partie."}}
steps:
  - send: {{channel: whatsapp, message: shipped}}
"""
INLINE = f"""{HEAD}steps:
  - send:
      channel: whatsapp
      content_sid: {TEST_CONTENT_SID}
      variables: '{{"1": {{{{ profile.traits.first_name | tojson }}}}}}'
      text: "Bonjour {{{{ profile.traits.first_name }}}} !"
"""


def ada(**traits: Any) -> dict[str, Any]:
    return {
        "type": "identify",
        "userId": "ada",
        "traits": {"first_name": 'Ada "l\'aînée"', "phone": PHONE, **traits},
    }


def shipped(order: str = "A-17") -> dict[str, Any]:
    return {**track_now("ada", "Order Shipped"), "properties": {"order": order}}


def inbound(
    client: TestClient, twilio: TwilioWhatsAppServer, sid: str, body: str, **more: str
) -> Any:
    params = {
        "MessageSid": sid,
        "AccountSid": twilio.account_sid,
        "From": TO,
        "To": "whatsapp:+14155238886",
        "Body": body,
        "NumMedia": "0",
        "WaId": PHONE.lstrip("+"),
        "ProfileName": "Ada",
        **more,
    }
    return signed_post(client, twilio.auth_token, "/webhooks/whatsapp/inbound", params)


def send_once(*events: dict[str, Any]) -> models.Delivery:
    """Route the events and deliver the one message they planned, as a worker does."""
    before = {d.id for d in deliveries()}
    route(*events)
    [planned] = [d for d in deliveries() if d.id not in before]
    return deliver(planned.id)


@pytest.fixture
def journeys(tmp_path: Path) -> Callable[[str], None]:
    return lambda text: load(tmp_path, text)


# ------------------------------------------------------------------- the window at send time


def test_a_template_outside_the_window_and_the_text_once_the_person_wrote(
    live: TwilioWhatsAppServer,
    client: TestClient,
    manual_clock: ManualClock,
    journeys: Callable[[str], None],
) -> None:
    journeys(TEMPLATE_AND_TEXT)
    route(ada(whatsapp_consent="opted_in"))

    first = send_once(shipped("A-17"))
    assert first.status == models.SENT, first.error
    assert live.requests[-1].body == {
        "To": TO,
        "From": "whatsapp:+14155238886",
        "StatusCallback": "https://carillon.example.com/webhooks/whatsapp/status",
        "ContentSid": TEST_CONTENT_SID,
        # tojson kept the quotes of the data inside the JSON string
        "ContentVariables": '{"1":"Ada \\"l\'aînée\\"","2":"A-17"}',
    }

    manual_clock.advance(timedelta(hours=1))
    answer = inbound(client, live, "SM" + "1" * 32, "Où en est ma commande ?")
    assert answer.status_code == 200, answer.text
    assert answer.text == '<?xml version="1.0" encoding="UTF-8"?><Response />'
    assert traits_of("phone", PHONE)[TRAIT] == (T0 + timedelta(hours=1)).isoformat()
    live.sessions.add(TO)

    manual_clock.advance(timedelta(hours=20))
    second = send_once(shipped("A-18"))
    assert second.status == models.SENT, second.error
    assert live.requests[-1].body["Body"] == (
        'Bonjour Ada "l\'aînée", la commande A-18 est partie.'
    )
    assert "ContentSid" not in live.requests[-1].body

    manual_clock.advance(timedelta(hours=4))  # 24 h after the person wrote
    live.sessions.clear()
    third = send_once(shipped("A-19"))
    assert third.status == models.SENT, third.error
    assert live.requests[-1].body["ContentSid"] == TEST_CONTENT_SID
    assert live.outside_window == []  # no free text ever went where only a template may


def test_text_alone_outside_the_window_is_a_clear_failed_delivery(
    live: TwilioWhatsAppServer, manual_clock: ManualClock, journeys: Callable[[str], None]
) -> None:
    journeys(TEXT_ONLY)
    route(ada(whatsapp_consent="opted_in"))
    failed = send_once(shipped())
    assert (failed.status, failed.error) == (models.FAILED, OUTSIDE_WINDOW)
    assert failed.next_attempt_at is None
    assert live.requests == []


def test_an_inline_send_step_goes_through_the_worker(
    live: TwilioWhatsAppServer, pipeline: Pipeline, journeys: Callable[[str], None]
) -> None:
    """Queued on the channel's own queue and sent by a real worker."""
    journeys(INLINE)
    route(ada(whatsapp_consent="opted_in"), shipped())
    pipeline.drain()
    [delivery] = deliveries()
    assert (delivery.channel, delivery.status) == ("whatsapp", models.SENT), delivery.error
    assert live.requests[0].body["ContentVariables"] == '{"1":"Ada \\"l\'aînée\\""}'


# ------------------------------------------------------------------------------ consent


@pytest.mark.parametrize(
    ("traits", "reason"),
    [
        ({}, "whatsapp requires explicit opt-in"),
        ({"whatsapp_consent": "yes"}, "whatsapp requires explicit opt-in"),
        ({"sms_opt_in": True, "sms_consent": "opted_in"}, "whatsapp requires explicit opt-in"),
        ({"whatsapp_consent": "opted_out"}, "whatsapp opted out"),
        ({"whatsapp_consent": "opted_in", "phone_valid": False}, "phone invalid"),
    ],
)
def test_without_an_explicit_whatsapp_opt_in_nothing_is_sent(
    live: TwilioWhatsAppServer,
    journeys: Callable[[str], None],
    traits: dict[str, Any],
    reason: str,
) -> None:
    journeys(TEMPLATE_AND_TEXT)
    route(ada(**traits))
    suppressed = send_once(shipped())
    assert suppressed.status == models.SUPPRESSED
    assert held(suppressed.id) == [("suppressed", reason)]
    assert live.requests == []


def test_stop_opts_out_and_the_next_message_is_suppressed(
    live: TwilioWhatsAppServer, client: TestClient, journeys: Callable[[str], None]
) -> None:
    journeys(TEMPLATE_AND_TEXT)
    route(ada(whatsapp_consent="opted_in"))
    assert inbound(client, live, "SM" + "2" * 32, "stop").status_code == 200
    assert inbound(client, live, "SM" + "2" * 32, "stop").status_code == 200  # a replay
    assert traits_of("phone", PHONE)["whatsapp_consent"] == "opted_out"
    assert send_once(shipped()).status == models.SUPPRESSED
    assert live.requests == []
    with session_scope() as session:
        [kept] = session.scalars(select(InboundMessage)).all()
    assert (kept.provider, kept.sender, kept.keyword) == ("twilio-whatsapp", TO, "stop")


def test_the_template_opt_out_button_and_start_set_consent(
    live: TwilioWhatsAppServer, client: TestClient
) -> None:
    route(ada(whatsapp_consent="opted_in"))
    inbound(client, live, "SM" + "3" * 32, "Stop promotions", ButtonPayload="STOP")
    assert traits_of("phone", PHONE)["whatsapp_consent"] == "opted_out"
    inbound(client, live, "SM" + "4" * 32, "Yes")  # a yes in a conversation opts nobody in
    assert traits_of("phone", PHONE)["whatsapp_consent"] == "opted_out"
    inbound(client, live, "SM" + "5" * 32, "START")
    assert traits_of("phone", PHONE)["whatsapp_consent"] == "opted_in"


# --------------------------------------------------------------- transient and permanent errors


def test_a_rate_limited_send_is_retried_and_then_goes(
    live: TwilioWhatsAppServer, manual_clock: ManualClock, journeys: Callable[[str], None]
) -> None:
    journeys(TEMPLATE_AND_TEXT)
    route(ada(whatsapp_consent="opted_in"))
    live.fail_next(429, {"code": 63018, "message": "Rate limit exceeded", "status": 429})
    waiting = send_once(shipped())
    assert waiting.status == models.PENDING
    assert "63018: Rate limit exceeded" in (waiting.error or "")
    manual_clock.advance(timedelta(hours=1))
    sent = deliver(waiting.id)
    assert (sent.status, sent.attempts) == (models.SENT, 2)
    assert len(live.requests) == 2


def test_63016_from_twilio_fails_for_good(
    live: TwilioWhatsAppServer, journeys: Callable[[str], None]
) -> None:
    journeys(TEMPLATE_AND_TEXT)
    route(ada(whatsapp_consent="opted_in"))
    live.fail_next(400, {"code": 63016, "message": "Outside the allowed window", "status": 400})
    failed = send_once(shipped())
    assert failed.status == models.FAILED and failed.next_attempt_at is None
    assert failed.error == f"{OUTSIDE_WINDOW} (63016: Outside the allowed window)"


def test_content_twilio_would_refuse_fails_when_rendered_without_a_call(
    live: TwilioWhatsAppServer, journeys: Callable[[str], None]
) -> None:
    """A variable that renders empty: WhatsApp refuses empty template parameters."""
    journeys(TEMPLATE_AND_TEXT.replace("first_name | tojson", 'nickname | default("") | tojson'))
    route(ada(whatsapp_consent="opted_in"), shipped())
    [failed] = deliveries()
    assert failed.status == models.FAILED
    assert "variable '1' is empty; WhatsApp refuses empty parameters" in (failed.error or "")
    assert live.requests == []


# ----------------------------------------------------------------------- status callbacks


def test_status_callbacks_record_delivered_read_and_the_63016_reason(
    live: TwilioWhatsAppServer, client: TestClient, journeys: Callable[[str], None]
) -> None:
    journeys(TEMPLATE_AND_TEXT)
    route(ada(whatsapp_consent="opted_in"))
    sent = send_once(shipped())
    sid = sent.provider_message_id
    assert sid
    path = "/webhooks/whatsapp/status"
    for status in ("sent", "delivered", "read"):
        params = {"MessageSid": sid, "MessageStatus": status, "AccountSid": live.account_sid}
        assert signed_post(client, live.auth_token, path, params).json() == {"recorded": True}
    failed = {"MessageSid": sid, "MessageStatus": "failed", "ErrorCode": "63016"}
    assert signed_post(client, live.auth_token, path, failed).json() == {"recorded": True}
    assert signed_post(client, live.auth_token, path, failed).json() == {"recorded": False}
    with session_scope() as session:
        moments = [(e.source, e.kind, e.detail) for e in history.of(session, sent.id)]
        whatsapp = {c.channel: c for c in kpis.channels(session)}["whatsapp"]
    assert moments[-4:] == [
        ("twilio-whatsapp", "sent", None),
        ("twilio-whatsapp", "delivered", None),
        ("twilio-whatsapp", "read", None),
        ("twilio-whatsapp", "failed", f"ErrorCode 63016: {OUTSIDE_WINDOW}"),
    ]
    assert (whatsapp.sent, whatsapp.delivered, whatsapp.opened) == (1, 1, 1)


@pytest.mark.parametrize("path", ["/webhooks/whatsapp/status", "/webhooks/whatsapp/inbound"])
def test_forged_callbacks_are_refused_and_change_nothing(
    live: TwilioWhatsAppServer, client: TestClient, path: str
) -> None:
    route(ada(whatsapp_consent="opted_in"))
    params = {"MessageSid": "SM" + "6" * 32, "MessageStatus": "read", "From": TO, "Body": "STOP"}
    assert signed_post(client, "not-the-auth-token", path, params).status_code == 403
    assert client.post(path, data=params).status_code == 403  # unsigned
    assert traits_of("phone", PHONE)["whatsapp_consent"] == "opted_in"
    with session_scope() as session:
        assert session.scalars(select(InboundMessage)).all() == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"MessageSid": "SM1", "From": PHONE, "Body": "STOP"}, "From: '+33612345678' is not a"),
        ({"MessageSid": "SM1", "Body": "STOP"}, "From: missing"),
        ({"From": TO, "Body": "STOP"}, "MessageSid: missing"),
        ({"MessageSid": "SM1", "From": TO, "Body": "x" * 4097}, "Body: longer than 4096"),
    ],
)
def test_signed_but_malformed_inbound_is_refused(
    live: TwilioWhatsAppServer, client: TestClient, params: dict[str, str], message: str
) -> None:
    answer = signed_post(client, live.auth_token, "/webhooks/whatsapp/inbound", params)
    assert answer.status_code == 400
    assert message in answer.json()["message"]
    with session_scope() as session:
        assert session.scalars(select(InboundMessage)).all() == []


def test_an_inbound_from_an_unknown_number_is_kept_and_opens_nothing(
    live: TwilioWhatsAppServer, client: TestClient
) -> None:
    assert inbound(client, live, "SM" + "7" * 32, "STOP").status_code == 200
    with session_scope() as session:
        [kept] = session.scalars(select(InboundMessage)).all()
    assert kept.profile_id is None


# ------------------------------------------------------------------------ journeys at load


@pytest.mark.parametrize(
    ("yaml", "where", "message"),
    [
        (
            f"{HEAD}steps:\n  - send: {{channel: whatsapp, content_sid: {TEST_CONTENT_SID}}}\n",
            "j.yaml:6:5:",
            "send (whatsapp) is missing required key 'text'",
        ),
        (
            f"{HEAD}messages:\n  m:\n    whatsapp: {{content: {TEST_CONTENT_SID}}}\n"
            "steps:\n  - send: {channel: whatsapp, message: m}\n",
            "j.yaml:7:16:",
            "unknown key 'content' in messages.m.whatsapp",
        ),
        (
            f"{HEAD}messages:\n  m:\n    whatsapp:\n      content_sid: {TEST_CONTENT_SID}\n"
            "      variables: '{\"1\": {{ profile.traits.first_name }'\n"
            "steps:\n  - send: {channel: whatsapp, message: m}\n",
            "j.yaml:9:19:",
            "messages.m.whatsapp.variables: unexpected '}'",
        ),
        (
            f"{HEAD}messages:\n  m:\n    whatsapp:\n      text: {{1: a}}\n"
            "steps:\n  - send: {channel: whatsapp, message: m}\n",
            "j.yaml:8:13:",
            "messages.m.whatsapp.text must be text, not a mapping",
        ),
    ],
)
def test_a_journey_with_missing_or_wrong_content_says_where(
    yaml: str, where: str, message: str
) -> None:
    with pytest.raises(JourneyInvalid) as invalid:
        parse_journey(yaml, "j.yaml")
    said = str(invalid.value)
    assert where in said and message in said, said


def test_every_form_loads() -> None:
    for text in (TEMPLATE_AND_TEXT, TEXT_ONLY, INLINE):
        assert parse_journey(text, "j.yaml").id == "shipped"
    catalog.forget_parsed()
