"""POST /webhooks/twilio/status and /webhooks/twilio/inbound, signed as Twilio signs them."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.clock import ManualClock
from app.db import session_scope
from app.delivery.models import Delivery
from app.journeys import catalog
from app.ops import kpis
from app.webhooks.models import InboundMessage
from tests.helpers import (
    SHIPPED,
    Pipeline,
    alice,
    deliveries,
    ingest,
    process,
    traits_of,
    twilio_signature,
)
from tests.providers.twilio import TwilioServer
from tests.webhooks.conftest import PUBLIC_URL, history_rows

PHONE = "+33612345678"


def post(
    client: TestClient, twilio: TwilioServer, path: str, params: dict[str, str], **extra: str
) -> object:
    signature = twilio_signature(twilio.auth_token, PUBLIC_URL + path, params)
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
    return client.post(path, content=urlencode(params), headers={**headers, **extra})


def status(client: TestClient, twilio: TwilioServer, sid: str, value: str, **more: str):  # type: ignore[no-untyped-def]
    params = {"MessageSid": sid, "MessageStatus": value, "AccountSid": twilio.account_sid, **more}
    return post(client, twilio, "/webhooks/twilio/status", params)


def inbound(client: TestClient, twilio: TwilioServer, sid: str, body: str, sender: str = PHONE):  # type: ignore[no-untyped-def]
    params = {
        "MessageSid": sid,
        "AccountSid": twilio.account_sid,
        "From": sender,
        "To": "+15005550006",
        "Body": body,
        "NumMedia": "0",
    }
    return post(client, twilio, "/webhooks/twilio/inbound", params)


def welcome(pipeline: Pipeline) -> Delivery:
    catalog.sync_directory(SHIPPED)
    ingest(alice(), {"type": "track", "userId": "alice", "event": "Newsletter Subscribed"})
    pipeline.drain()
    [delivery] = deliveries()
    assert (delivery.channel, delivery.status) == ("sms", "sent"), delivery.error
    return delivery


def test_status_callbacks_go_into_the_history_once(
    client: TestClient, twilio: TwilioServer, pipeline: Pipeline
) -> None:
    delivery = welcome(pipeline)
    sid = delivery.provider_message_id
    assert sid
    for value in ("queued", "sent", "delivered"):
        answer = status(client, twilio, sid, value)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"recorded": True}
    assert status(client, twilio, sid, "delivered").json() == {"recorded": False}  # replay
    assert [(r[1], r[2], r[4]) for r in history_rows()] == [
        ("twilio", "queued", f"{sid}:queued"),
        ("twilio", "sent", f"{sid}:sent"),
        ("twilio", "delivered", f"{sid}:delivered"),
    ]
    with session_scope() as session:
        sms = {c.channel: c for c in kpis.channels(session)}["sms"]
    assert (sms.sent, sms.delivered, sms.delivery_rate, sms.opened) == (1, 1, 1.0, None)


def test_a_failure_keeps_its_error_code(
    client: TestClient, twilio: TwilioServer, pipeline: Pipeline
) -> None:
    delivery = welcome(pipeline)
    assert delivery.provider_message_id
    status(client, twilio, delivery.provider_message_id, "undelivered", ErrorCode="30003")
    [(_, source, kind, detail, _)] = history_rows()
    assert (source, kind, detail) == ("twilio", "undelivered", "ErrorCode 30003")


def test_unknown_messages_and_statuses_change_nothing(
    client: TestClient, twilio: TwilioServer, pipeline: Pipeline
) -> None:
    delivery = welcome(pipeline)
    assert status(client, twilio, "SM" + "0" * 32, "delivered").json() == {"recorded": False}
    assert delivery.provider_message_id
    assert status(client, twilio, delivery.provider_message_id, "teleported").json() == {
        "recorded": False
    }
    assert history_rows() == []


@pytest.mark.parametrize("path", ["/webhooks/twilio/status", "/webhooks/twilio/inbound"])
def test_forged_and_unsigned_callbacks_are_refused(
    client: TestClient, twilio: TwilioServer, path: str
) -> None:
    process(ingest(alice()))
    params = {"MessageSid": "SM1", "MessageStatus": "delivered", "From": PHONE, "Body": "STOP"}
    good = twilio_signature(twilio.auth_token, PUBLIC_URL + path, params)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    attempts = {
        "unsigned": ({}, urlencode(params)),
        "other token": (
            {"X-Twilio-Signature": twilio_signature("not-the-token", PUBLIC_URL + path, params)},
            urlencode(params),
        ),
        "other url": (
            {
                "X-Twilio-Signature": twilio_signature(
                    twilio.auth_token, "https://evil.example" + path, params
                )
            },
            urlencode(params),
        ),
        "body changed": ({"X-Twilio-Signature": good}, urlencode({**params, "Body": "START"})),
        "not UTF-8": ({"X-Twilio-Signature": good}, b"Body=\xff"),
    }
    for name, (headers, content) in attempts.items():
        answer = client.post(path, content=content, headers={**form, **headers})
        assert answer.status_code == 403, name
    assert history_rows() == []
    assert "sms_consent" not in traits_of("phone", PHONE)
    with session_scope() as session:
        assert session.scalars(select(InboundMessage)).all() == []


def test_without_public_url_twilio_callbacks_cannot_be_verified(
    client: TestClient, twilio: TwilioServer, settings_env: pytest.MonkeyPatch
) -> None:
    from app.settings import get_settings

    settings_env.delenv("CARILLON_PUBLIC_URL")
    get_settings.cache_clear()
    answer = inbound(client, twilio, "SM1", "STOP")
    assert answer.status_code == 403
    assert "CARILLON_PUBLIC_URL" in answer.json()["message"]


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/webhooks/twilio/status", {"MessageStatus": "sent"}, "MessageSid"),
        ("/webhooks/twilio/status", {"MessageSid": "SM1"}, "MessageStatus"),
        ("/webhooks/twilio/inbound", {"MessageSid": "SM1", "Body": "STOP"}, "From"),
        ("/webhooks/twilio/inbound", {"From": PHONE, "Body": "STOP"}, "MessageSid"),
        (
            "/webhooks/twilio/inbound",
            {"MessageSid": "SM1", "From": PHONE, "Body": "x" * 1601},
            "Body",
        ),
    ],
)
def test_signed_but_malformed_callbacks_are_refused(
    client: TestClient, twilio: TwilioServer, path: str, params: dict[str, str], message: str
) -> None:
    answer = post(client, twilio, path, params)
    assert answer.status_code == 400  # type: ignore[attr-defined]
    assert message in answer.json()["message"]  # type: ignore[attr-defined]
    with session_scope() as session:
        assert session.scalars(select(InboundMessage)).all() == []


FLASH_SALE = """
id: flash-sale
name: Flash sale SMS
trigger: {event: Flash Sale}
re_entry: always
steps:
  - send: {channel: sms, text: "Vente flash : -30 % aujourd'hui."}
"""


def test_stop_opts_out_and_the_next_journey_sms_is_suppressed(
    client: TestClient, twilio: TwilioServer, pipeline: Pipeline, tmp_path: Path
) -> None:
    (tmp_path / "flash.yaml").write_text(FLASH_SALE, encoding="utf-8")
    catalog.sync_directory(tmp_path)
    sale = {"type": "track", "userId": "alice", "event": "Flash Sale"}
    ingest(alice(), sale)
    pipeline.drain()
    [first] = deliveries()
    assert first.status == "sent", first.error

    answer = inbound(client, twilio, "SM-stop", " stop ")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/xml")
    assert "<Message>" not in answer.text
    assert traits_of("phone", PHONE)["sms_consent"] == "opted_out"

    # The next sale plans the SMS; the send-time check refuses it and Twilio hears nothing.
    sent_before = len(twilio.messages)
    ingest(sale)
    pipeline.drain()
    latest = deliveries()[-1]
    assert latest.id != first.id
    assert (latest.channel, latest.status) == ("sms", "suppressed")
    assert "opted out" in (latest.error or "")
    assert len(twilio.messages) == sent_before


def test_start_opts_back_in_and_a_replayed_stop_does_not_undo_it(
    client: TestClient, twilio: TwilioServer, pipeline: Pipeline, manual_clock: ManualClock
) -> None:
    welcome(pipeline)
    inbound(client, twilio, "SM-a", "STOP")
    manual_clock.advance(timedelta(minutes=1))
    inbound(client, twilio, "SM-b", "Start")
    assert traits_of("phone", PHONE)["sms_consent"] == "opted_in"
    manual_clock.advance(timedelta(minutes=1))
    assert inbound(client, twilio, "SM-a", "STOP").status_code == 200  # Twilio retrying
    assert traits_of("phone", PHONE)["sms_consent"] == "opted_in"
    with session_scope() as session:
        kept = [(m.external_id, m.keyword) for m in session.scalars(select(InboundMessage))]
    assert sorted(kept) == [("SM-a", "stop"), ("SM-b", "start")]


def test_help_is_answered_in_twiml_and_other_text_is_kept(
    client: TestClient, twilio: TwilioServer, pipeline: Pipeline
) -> None:
    welcome(pipeline)
    answer = inbound(client, twilio, "SM-h", "HELP")
    assert answer.status_code == 200
    assert "<Response><Message>Messages marketing : STOP" in answer.text
    other = inbound(client, twilio, "SM-o", "STOP sending me the promo please")
    assert "<Message>" not in other.text
    assert traits_of("phone", PHONE).get("sms_consent") is None
    stranger = inbound(client, twilio, "SM-s", "STOP", sender="+33700000000")
    assert stranger.status_code == 200
    with session_scope() as session:
        rows = {m.external_id: m for m in session.scalars(select(InboundMessage))}
    assert rows["SM-s"].profile_id is None and rows["SM-o"].keyword is None
