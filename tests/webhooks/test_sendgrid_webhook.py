"""POST /webhooks/sendgrid: SendGrid's Event Webhook, signed with the account's P-256 key."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app import clock
from app.analytics import funnel
from app.db import session_scope
from app.delivery.models import Delivery
from app.ops import kpis, story
from channels.email.settings import SendGridSettings
from tests.helpers import deliveries, traits_of
from tests.webhooks.conftest import Keys, body_of, history_rows, new_keys, sendgrid_headers

URL = "/webhooks/sendgrid"


def event(delivery: Delivery | None, kind: str, event_id: str, **extra: Any) -> dict[str, Any]:
    """Shaped like SendGrid's documented payload: custom_args are echoed as top-level keys."""
    item: dict[str, Any] = {
        "email": "alice@example.com",
        "timestamp": 1767340800,
        "event": kind,
        "sg_event_id": event_id,
        "sg_message_id": f"{delivery.provider_message_id if delivery else 'x'}.filter0001",
        "category": ["cart-abandonment"],
        **extra,
    }
    if delivery is not None:
        item["carillon_delivery_id"] = str(delivery.id)
    return item


def post(client: TestClient, keys: Keys, events: Any, **headers: str) -> Any:
    body = events if isinstance(events, bytes) else body_of(events)
    return client.post(URL, content=body, headers={**sendgrid_headers(keys, body), **headers})


def test_signed_events_are_recorded_and_set_consent(
    client: TestClient, keys: Keys, email_delivery: Delivery
) -> None:
    events = [
        event(email_delivery, "processed", "ev-1"),
        event(email_delivery, "delivered", "ev-2", response="250 OK"),
        event(email_delivery, "open", "ev-3"),
        event(email_delivery, "click", "ev-4", url="https://shop.example/cart/1"),
        event(email_delivery, "spamreport", "ev-5"),
    ]
    answer = post(client, keys, events)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"recorded": 5, "replayed": 0, "ignored": 0}
    rows = history_rows()
    assert [(r[1], r[2], r[4]) for r in rows] == [
        ("sendgrid", "processed", "ev-1"),
        ("sendgrid", "delivered", "ev-2"),
        ("sendgrid", "open", "ev-3"),
        ("sendgrid", "click", "ev-4"),
        ("sendgrid", "spamreport", "ev-5"),
    ]
    assert rows[1][3] == "response 250 OK"
    assert rows[3][3] == "url https://shop.example/cart/1"
    assert traits_of("user_id", "alice")["email_consent"] == "complained"
    # The delivery's story and the dashboard figures come from these rows.
    with session_scope() as session:
        told = story.tell(session, email_delivery.id)
    assert [(w["source"], w["kind"]) for w in told.webhooks][:2] == [
        ("sendgrid", "processed"),
        ("sendgrid", "delivered"),
    ]
    assert story.WEBHOOKS_NOTE not in told.notes
    with session_scope() as session:
        email = {c.channel: c for c in kpis.channels(session)}["email"]
    assert (email.sent, email.delivered, email.opened, email.clicked) == (1, 1, 1, 1)
    assert email.open_rate == 1.0


def test_the_journey_funnel_learns_delivered_and_clicked_from_the_webhooks(
    client: TestClient, keys: Keys, email_delivery: Delivery
) -> None:
    def cart_funnel() -> funnel.Funnel:
        with session_scope() as session:
            rows = funnel.journeys(session)
        return next(f for f in rows if f.journey == email_delivery.journey_id)

    before = cart_funnel()
    assert (before.entered, before.reached, before.delivered, before.clicked) == (1, 1, None, None)
    # Any webhook tells the funnel that SendGrid reports: delivered is now known, and 0.
    assert post(client, keys, [event(email_delivery, "deferred", "ev-0")]).status_code == 200
    assert (cart_funnel().delivered, cart_funnel().clicked) == (0, 0)
    events = [
        event(email_delivery, "delivered", "ev-1"),
        event(email_delivery, "click", "ev-2", url="https://shop.example/cart/1"),
        event(email_delivery, "click", "ev-3", url="https://shop.example/cart/1"),
    ]
    assert post(client, keys, events).status_code == 200
    after = cart_funnel()
    assert (after.entered, after.reached, after.delivered, after.clicked) == (1, 1, 1, 1)


@pytest.mark.parametrize(
    ("kind", "extra", "state"),
    [
        ("bounce", {"type": "bounce", "status": "5.1.1", "reason": "no such user"}, "bounced"),
        ("unsubscribe", {}, "unsubscribed"),
        ("group_unsubscribe", {"asm_group_id": 12}, "unsubscribed"),
    ],
)
def test_events_that_mean_no_set_email_consent(
    client: TestClient,
    keys: Keys,
    email_delivery: Delivery,
    kind: str,
    extra: dict[str, Any],
    state: str,
) -> None:
    assert post(client, keys, [event(email_delivery, kind, "ev-no", **extra)]).status_code == 200
    assert traits_of("user_id", "alice")["email_consent"] == state


@pytest.mark.parametrize("kind", ["dropped", "deferred"])
def test_soft_trouble_is_recorded_without_touching_consent(
    client: TestClient, keys: Keys, email_delivery: Delivery, kind: str
) -> None:
    answer = post(client, keys, [event(email_delivery, kind, "ev-soft", reason="mailbox full")])
    assert answer.json()["recorded"] == 1
    blocked = event(email_delivery, "bounce", "ev-blocked", type="blocked", reason="try later")
    assert post(client, keys, [blocked]).json()["recorded"] == 1
    assert "email_consent" not in traits_of("user_id", "alice")
    assert [r[2] for r in history_rows()] == [kind, "bounce"]


def test_a_replayed_batch_changes_nothing(
    client: TestClient, keys: Keys, email_delivery: Delivery
) -> None:
    batch = [event(email_delivery, "delivered", "ev-1"), event(email_delivery, "open", "ev-2")]
    assert post(client, keys, batch).json() == {"recorded": 2, "replayed": 0, "ignored": 0}
    before = history_rows()
    assert post(client, keys, batch).json() == {"recorded": 0, "replayed": 2, "ignored": 0}
    assert history_rows() == before


def test_events_for_unknown_deliveries_are_skipped(
    client: TestClient, keys: Keys, email_delivery: Delivery
) -> None:
    other = event(None, "unsubscribe", "ev-other")  # mail some other system sent
    missing = {**event(email_delivery, "unsubscribe", "ev-gone"), "carillon_delivery_id": "999999"}
    mangled = {**event(email_delivery, "bounce", "ev-bad"), "carillon_delivery_id": "12abc"}
    future = event(email_delivery, "machine_opened", "ev-new")  # a kind not known (yet)
    answer = post(client, keys, [other, missing, mangled, future])
    assert answer.status_code == 200
    assert answer.json() == {"recorded": 0, "replayed": 0, "ignored": 4}
    assert history_rows() == []
    assert "email_consent" not in traits_of("user_id", "alice")


def test_forged_unsigned_and_wrong_key_are_refused(
    client: TestClient, keys: Keys, email_delivery: Delivery
) -> None:
    body = body_of([event(email_delivery, "unsubscribe", "ev-x")])
    signed = sendgrid_headers(keys, body)
    attempts = [
        ("unsigned", {"Content-Type": "application/json"}, body),
        ("body changed", signed, body.replace(b"ev-x", b"ev-y")),
        ("timestamp changed", {**signed, "X-Twilio-Email-Event-Webhook-Timestamp": "1"}, body),
        ("another key", sendgrid_headers(new_keys(), body), body),
        ("garbage", {**signed, "X-Twilio-Email-Event-Webhook-Signature": "%%%"}, body),
        ("not DER", {**signed, "X-Twilio-Email-Event-Webhook-Signature": "AAAA"}, body),
        ("not UTF-8", sendgrid_headers(keys, b"\xff" + body), b"\xff" + body),
    ]
    for name, headers, content in attempts:
        answer = client.post(URL, content=content, headers=headers)
        assert answer.status_code == 403, name
        assert answer.json()["success"] is False
    assert history_rows() == []
    assert "email_consent" not in traits_of("user_id", "alice")


def test_without_a_configured_key_every_webhook_is_refused(
    client: TestClient, keys: Keys, email_delivery: Delivery, settings_env: pytest.MonkeyPatch
) -> None:
    settings_env.delenv("CARILLON_SENDGRID_WEBHOOK_PUBLIC_KEY")
    from app.settings import get_settings

    get_settings.cache_clear()
    answer = post(client, keys, [event(email_delivery, "unsubscribe", "ev-x")])
    assert answer.status_code == 403
    assert "no verification key" in answer.json()["message"]
    assert history_rows() == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "malformed JSON"),
        (b'{"event": "open"}', "expected a JSON array"),
        (b"[1]", "[1]: expected an event object"),
        (b'[{"sg_event_id": "a", "timestamp": 1}]', "[1].event"),
        (b'[{"event": "open", "timestamp": 1}]', "[1].sg_event_id"),
        (b'[{"event": "open", "sg_event_id": "a", "timestamp": "soon"}]', "[1].timestamp"),
        (b'[{"event": "open", "sg_event_id": "a", "timestamp": 1e300}]', "[1].timestamp"),
    ],
)
def test_signed_but_malformed_bodies_are_refused_whole(
    client: TestClient, keys: Keys, email_delivery: Delivery, body: bytes, message: str
) -> None:
    good = body_of([event(email_delivery, "unsubscribe", "ev-ok")])
    # A good event first: the whole batch is refused, not the good part applied.
    content = good[:-1] + b"," + body[1:] if body.startswith(b"[") else body
    answer = post(client, keys, content)
    assert answer.status_code == 400
    assert message in answer.json()["message"]
    assert history_rows() == []
    assert "email_consent" not in traits_of("user_id", "alice")


def test_a_pasted_pem_key_works_and_a_broken_key_stops_start() -> None:
    keys = new_keys()
    der = base64.b64decode(keys.public_base64)
    pem = (
        "-----BEGIN PUBLIC KEY-----\n"
        + base64.encodebytes(der).decode()
        + "-----END PUBLIC KEY-----\n"
    )
    assert SendGridSettings(sendgrid_webhook_public_key=pem).sendgrid_webhook_public_key == pem
    with pytest.raises(ValueError, match="CARILLON_SENDGRID_WEBHOOK_PUBLIC_KEY"):
        SendGridSettings(sendgrid_webhook_public_key=keys.public_base64[:40])


def test_deliveries_are_untouched_by_webhooks(
    client: TestClient, keys: Keys, email_delivery: Delivery
) -> None:
    """The status model stays simple: webhooks add history, the row keeps `sent`."""
    post(client, keys, [event(email_delivery, "bounce", "ev-1", type="bounce")])
    [delivery] = deliveries()
    assert (delivery.status, delivery.provider_message_id) == (
        "sent",
        email_delivery.provider_message_id,
    )


def test_a_replay_of_an_old_signed_request_is_refused(
    client: TestClient, keys: Keys, email_delivery: Delivery
) -> None:
    """A genuine request captured and replayed later (after its events' ids were pruned, or
    against another install with the same key) must not unsubscribe anyone."""
    body = body_of([event(email_delivery, "unsubscribe", "ev-old")])
    an_hour_ago = str(int((clock.now() - timedelta(hours=1)).timestamp()))
    answer = client.post(URL, content=body, headers=sendgrid_headers(keys, body, an_hour_ago))
    assert answer.status_code == 403
    assert answer.json()["message"].startswith("stale: signed at")
    assert history_rows() == []
    assert "email_consent" not in traits_of("user_id", "alice")
    fresh = str(int((clock.now() - timedelta(minutes=5)).timestamp()))  # within the window
    assert client.post(URL, content=body, headers=sendgrid_headers(keys, body, fresh)).is_success
