"""Stage 4, delivery, end to end in-process: events in, the providers' local stand-ins out.

Events are stored without HTTP (`ingest`), routed and delivered by the real queue worker, and
the channels talk to local servers speaking SendGrid's, Twilio's and Meta's wire formats. The
settings reach the channels the way they do in production: through the environment.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from app.clock import ManualClock
from app.db import after_commit, session_scope
from app.delivery.models import Delivery
from app.delivery.tasks import send_job
from app.events.models import Event
from app.journeys import catalog
from app.journeys.timers import fire_due
from app.settings import get_settings
from app.sweeper import sweep_deliveries, sweep_events
from app.tasks import broker
from tests.helpers import (
    SHIPPED,
    Pipeline,
    Providers,
    alice,
    at,
    cart,
    deliveries,
    ingest,
    instagram_like,
    instances,
    newsletter,
    order,
    process,
    send,
    sha256,
    timers,
)
from tests.providers.meta import TEST_AUDIENCE_ID, graph_error
from tests.providers.sendgrid import error_body, sendgrid_error
from tests.providers.twilio import TEST_FROM_NUMBER, twilio_error

WELCOME_SMS = "Bienvenue Alice ! -15 % sur votre première commande avec le code BIENVENUE15."

# Settings fields whose environment variable is the provider's own name, not CARILLON_*.


def run_cart_reminder(clock: ManualClock, pipeline: Pipeline) -> None:
    """Alice abandons a 42.5 € cart; an hour later the reminder is due and handed over."""
    send(pipeline, alice(), cart(42.5))
    clock.advance(timedelta(hours=1))
    assert fire_due(100) == 1
    pipeline.drain()


# --------------------------------------------------------------------------- the three scenarios


def test_cart_reminder_is_sent_through_sendgrid_one_hour_later(
    manual_clock: ManualClock, pipeline: Pipeline, providers: Providers
) -> None:
    sendgrid = providers.sendgrid
    catalog.sync_directory(SHIPPED)
    send(pipeline, alice(), cart(42.5))
    manual_clock.advance(timedelta(minutes=59))
    assert fire_due(100) == 0
    pipeline.drain()
    assert sendgrid.requests == []  # not a minute early

    manual_clock.advance(timedelta(minutes=1))
    assert fire_due(100) == 1
    pipeline.drain()

    [request] = sendgrid.requests
    assert (request.method, request.path) == ("POST", "/v3/mail/send")
    assert request.header("authorization") == f"Bearer {sendgrid.api_key}"
    mail = request.body
    [personalization] = mail["personalizations"]
    assert personalization["to"] == [{"email": "alice@example.com"}]
    assert mail["subject"] == "Alice, votre panier vous attend"
    parts = {part["type"]: part["value"] for part in mail["content"]}
    assert set(parts) == {"text/plain", "text/html"}
    assert "42.5 €" in parts["text/plain"] and "PANIER10" in parts["text/plain"]
    assert "42.5 €" in parts["text/html"]
    assert "<a href='https://shop.example/cart/1'>" in parts["text/html"]

    [delivery] = deliveries()
    # The delivery id rides along, so SendGrid's event webhook can find the row again.
    assert mail["custom_args"] == {"carillon_delivery_id": str(delivery.id)}
    assert mail["categories"] == ["cart-abandonment"]
    [(message_id, _)] = sendgrid.accepted
    assert (delivery.channel, delivery.status) == ("email", "sent")
    assert delivery.provider_message_id == message_id
    assert delivery.status_code == 202
    assert delivery.error is None
    assert delivery.attempts == 1
    assert delivery.sent_at == manual_clock.now()
    assert instances()[0].status == "completed"


def test_an_order_after_the_cart_means_no_request_at_all(
    manual_clock: ManualClock, pipeline: Pipeline, providers: Providers
) -> None:
    catalog.sync_directory(SHIPPED)
    send(pipeline, alice(), cart(42.5))
    send(pipeline, order())
    manual_clock.advance(timedelta(hours=2))
    assert fire_due(100) == 0
    pipeline.drain()
    assert deliveries() == []
    for server in providers.all():
        assert server.requests == []


def test_newsletter_signup_sends_the_welcome_sms_through_twilio(
    pipeline: Pipeline, providers: Providers
) -> None:
    twilio = providers.twilio
    catalog.sync_directory(SHIPPED)
    send(pipeline, alice(), newsletter())

    [request] = twilio.requests
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{twilio.account_sid}/Messages.json"
    assert request.body["To"] == "+33612345678"
    assert request.body["From"] == TEST_FROM_NUMBER
    assert request.body["Body"] == WELCOME_SMS
    [message] = twilio.messages
    [delivery] = deliveries()
    assert (delivery.channel, delivery.status) == ("sms", "sent")
    assert delivery.provider_message_id == message["sid"]
    assert delivery.provider_message_id.startswith("SM")
    assert delivery.status_code == 201
    assert delivery.error is None
    assert providers.sendgrid.requests == [] and providers.meta.requests == []


def test_instagram_like_adds_hashed_identifiers_to_the_meta_audience(
    pipeline: Pipeline, providers: Providers
) -> None:
    meta = providers.meta
    catalog.sync_directory(SHIPPED)
    send(pipeline, alice(), instagram_like())

    [request] = meta.requests
    assert (request.method, request.path) == ("POST", f"/v21.0/{TEST_AUDIENCE_ID}/users")
    assert request.body["access_token"] == meta.access_token
    payload = json.loads(request.body["payload"])
    assert payload["schema"] == ["EMAIL", "PHONE"]
    assert payload["data"] == [[sha256("alice@example.com"), sha256("33612345678")]]
    # Only hashes leave Carillon: no raw address, however it is encoded.
    for raw in ("alice@example.com", "alice%40example.com", "alice", "33612345678"):
        assert raw not in request.text
    [delivery] = deliveries()
    assert (delivery.channel, delivery.status) == ("meta_audience", "sent")
    assert delivery.status_code == 200
    assert delivery.provider_message_id and delivery.provider_message_id.isdigit()
    assert delivery.error is None
    assert meta.added == [{"audience_id": TEST_AUDIENCE_ID, "payload": payload}]


# --------------------------------------------------------------------------- no credentials


def test_without_credentials_every_message_is_rendered_recorded_and_not_sent(
    manual_clock: ManualClock, pipeline: Pipeline, no_credentials: Providers
) -> None:
    catalog.sync_directory(SHIPPED)
    send(pipeline, alice(), cart(42.5), newsletter(2), instagram_like(3))
    manual_clock.advance(timedelta(hours=1))
    assert fire_due(100) == 1
    pipeline.drain()

    by_channel = {d.channel: d for d in deliveries()}
    assert set(by_channel) == {"email", "sms", "meta_audience"}
    for delivery in by_channel.values():
        assert delivery.status == "dry_run"
        assert delivery.provider_message_id is None
        assert delivery.attempts == 1
        # The record says plainly that nothing left the machine.
        assert (delivery.error or "").startswith(
            f"dry run: channel {delivery.channel} has no provider credentials configured, "
            "nothing was sent"
        )
    # ... where it would have gone ...
    assert "alice@example.com" in (by_channel["email"].error or "")
    assert "+33612345678" in (by_channel["sms"].error or "")
    assert "alice@example.com" in (by_channel["meta_audience"].error or "")
    # ... and exactly what would have been sent.
    email = by_channel["email"].content
    assert email["subject"] == "Alice, votre panier vous attend"
    assert "42.5 €" in email["text"] and "https://shop.example/cart/1" in email["html"]
    assert by_channel["sms"].content == {"text": WELCOME_SMS}
    assert by_channel["meta_audience"].content == {"audience_id": TEST_AUDIENCE_ID}
    for server in no_credentials.all():
        assert server.requests == []


# --------------------------------------------------------------------------- provider errors


def _email_error(providers: Providers) -> str:
    words = "The from address does not match a verified Sender Identity."
    providers.sendgrid.fail_next(400, error_body(sendgrid_error(words, "from", None)))
    return words


def _sms_error(providers: Providers) -> str:
    words = "The 'To' number +33612345678 is not a valid phone number."
    providers.twilio.fail_next(400, twilio_error(400, 21211, words))
    return words


def _meta_error(providers: Providers) -> str:
    words = "(#100) Invalid parameter"
    providers.meta.fail_next(400, graph_error(100, words))
    return words


@pytest.mark.parametrize(
    ("channel", "refuse", "code"),
    [
        ("email", _email_error, None),
        ("sms", _sms_error, "21211"),
        ("meta_audience", _meta_error, "100"),
    ],
)
def test_a_provider_refusal_is_recorded_with_its_words_and_status(
    channel: str,
    refuse: Callable[[Providers], str],
    code: str | None,
    manual_clock: ManualClock,
    pipeline: Pipeline,
    providers: Providers,
) -> None:
    catalog.sync_directory(SHIPPED)
    words = refuse(providers)
    if channel == "email":
        run_cart_reminder(manual_clock, pipeline)
    else:
        trigger = newsletter() if channel == "sms" else instagram_like()
        send(pipeline, alice(), trigger)

    [delivery] = deliveries()
    assert (delivery.channel, delivery.status) == (channel, "failed")
    assert words in (delivery.error or "")
    if code is not None:
        assert code in (delivery.error or "")
    assert delivery.status_code == 400
    assert delivery.provider_message_id is None
    assert delivery.sent_at is None
    # A 400 is the request's fault: one call, no retry.
    assert delivery.attempts == 1
    assert sum(len(server.requests) for server in providers.all()) == 1


# --------------------------------------------------------------------------- after commit


def test_a_fired_timer_hands_its_delivery_to_the_queue_only_once_committed(
    manual_clock: ManualClock,
    pipeline: Pipeline,
    providers: Providers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Timers fire inside savepoints; the queue must still hear of the row after the commit,
    or a fast worker finds nothing to claim and the message is spent for nothing."""
    catalog.sync_directory(SHIPPED)
    send(pipeline, alice(), cart(42.5))
    # Another connection, as a worker has: it sees committed rows only.
    outside = create_engine(get_settings().database_url)
    handed_over = broker.enqueue
    seen: list[str | None] = []

    def enqueue_and_look(message: Any, *, delay: int | None = None) -> Any:
        if message.actor_name == "delivery.send_email":
            with outside.connect() as conn:
                status = select(Delivery.status).where(Delivery.id == message.args[0])
                seen.append(conn.scalar(status))
        return handed_over(message, delay=delay)

    monkeypatch.setattr(broker, "enqueue", enqueue_and_look)
    try:
        manual_clock.advance(timedelta(hours=1))
        assert fire_due(100) == 1
        pipeline.drain()
    finally:
        outside.dispose()

    assert seen == ["pending"]
    assert len(providers.sendgrid.requests) == 1
    assert [d.status for d in deliveries()] == ["sent"]


def test_enqueues_wait_for_the_outermost_commit_and_die_with_their_savepoint() -> None:
    ran: list[str] = []
    with session_scope() as session:
        after_commit(session, lambda: ran.append("outer"))
        with session.begin_nested():
            after_commit(session, lambda: ran.append("released savepoint"))
        assert ran == []  # a released savepoint is not a commit
        with pytest.raises(RuntimeError), session.begin_nested():
            after_commit(session, lambda: ran.append("rolled-back savepoint"))
            with session.begin_nested():
                after_commit(session, lambda: ran.append("inside a rolled-back savepoint"))
            raise RuntimeError("this trip fails")
        assert ran == []
    assert ran == ["outer", "released savepoint"]

    with pytest.raises(RuntimeError), session_scope() as session:
        after_commit(session, lambda: ran.append("rolled back"))
        with session.begin_nested():
            after_commit(session, lambda: ran.append("released, then rolled back"))
        raise RuntimeError("the whole transaction fails")
    assert ran == ["outer", "released savepoint"]


# --------------------------------------------------------------------------- at most once


def _pending_delivery_with_no_queue_message() -> int:
    """Alice subscribes; the event is routed inline and the enqueued send is then lost."""
    catalog.sync_directory(SHIPPED)
    ids = ingest(alice(), newsletter())
    broker.flush_all()  # the routing job: done inline below
    process(ids)
    broker.flush_all()  # the delivery job: lost
    [delivery] = deliveries()
    assert (delivery.channel, delivery.status) == ("sms", "pending")
    return delivery.id


def test_the_same_delivery_queued_twice_calls_the_provider_once(
    idle_pipeline: Pipeline, providers: Providers
) -> None:
    delivery_id = _pending_delivery_with_no_queue_message()
    send_job("sms").send(delivery_id)
    send_job("sms").send(delivery_id)
    idle_pipeline.worker.start()  # two worker threads, two copies of the message
    idle_pipeline.drain()

    assert len(providers.twilio.requests) == 1
    [delivery] = deliveries()
    assert (delivery.status, delivery.attempts) == ("sent", 1)
    assert delivery.provider_message_id == providers.twilio.messages[0]["sid"]


def test_the_sweeper_hands_over_a_delivery_whose_enqueue_was_lost(
    manual_clock: ManualClock, idle_pipeline: Pipeline, providers: Providers
) -> None:
    delivery_id = _pending_delivery_with_no_queue_message()
    idle_pipeline.worker.start()
    idle_pipeline.drain()
    # Nothing in the queue: without the sweeper the row would stay pending for ever.
    [delivery] = deliveries()
    assert delivery.status == "pending"
    assert providers.twilio.requests == []

    # Fresh work is left alone; only rows pending longer than the threshold are swept.
    assert sweep_deliveries(timedelta(seconds=30)) == 0
    manual_clock.advance(timedelta(seconds=30))
    assert sweep_deliveries(timedelta(seconds=30)) == 1
    idle_pipeline.drain()

    [request] = providers.twilio.requests
    assert request.body["Body"] == WELCOME_SMS
    [delivery] = deliveries()
    assert (delivery.id, delivery.status, delivery.attempts) == (delivery_id, "sent", 1)
    # Done is done: a later sweep finds nothing and sends nothing.
    assert sweep_deliveries(timedelta(0)) == 0
    idle_pipeline.drain()
    assert len(providers.twilio.requests) == 1


def test_the_sweeper_hands_over_an_event_whose_enqueue_was_lost(
    idle_pipeline: Pipeline, providers: Providers
) -> None:
    catalog.sync_directory(SHIPPED)
    event_ids = ingest(alice(), newsletter())
    broker.flush_all()  # the routing job is lost
    idle_pipeline.worker.start()
    idle_pipeline.drain()
    assert deliveries() == []
    assert providers.twilio.requests == []

    assert sweep_events(timedelta(0)) == len(event_ids) == 2
    idle_pipeline.drain()

    [request] = providers.twilio.requests
    assert request.body["To"] == "+33612345678"
    [delivery] = deliveries()
    assert (delivery.status, delivery.attempts) == ("sent", 1)
    with session_scope() as session:
        unprocessed = session.scalars(select(Event.id).where(Event.processed_at.is_(None)))
        assert list(unprocessed) == []
    assert sweep_events(timedelta(0)) == 0
    assert sweep_deliveries(timedelta(0)) == 0
    idle_pipeline.drain()
    assert len(providers.twilio.requests) == 1


# --------------------------------------------------------------------------- timers, concurrently

PEOPLE = 200
FIRING_THREADS = 4


def test_timers_fired_by_concurrent_schedulers_plan_each_delivery_once(
    manual_clock: ManualClock, pipeline: Pipeline, providers: Providers
) -> None:
    catalog.sync_directory(SHIPPED)
    emails = {f"person{i}@example.com" for i in range(PEOPLE)}
    for start in range(0, PEOPLE, 20):
        batch: list[dict[str, Any]] = []
        for i in range(start, start + 20):
            batch.append(
                {
                    "type": "identify",
                    "userId": f"person{i}",
                    "timestamp": at(0),
                    "traits": {"first_name": f"P{i}", "email": f"person{i}@example.com"},
                }
            )
            batch.append(cart(25 + i, user=f"person{i}"))
        ingest(*batch)
    pipeline.drain()
    assert [t.status for t in timers()] == ["pending"] * PEOPLE
    assert deliveries() == []

    manual_clock.advance(timedelta(hours=1))
    ready = threading.Barrier(FIRING_THREADS)

    def scheduler() -> int:
        ready.wait()
        return fire_due(batch_size=10)

    with ThreadPoolExecutor(FIRING_THREADS) as pool:
        claimed = [f.result() for f in [pool.submit(scheduler) for _ in range(FIRING_THREADS)]]
    pipeline.drain()

    # Every timer claimed by exactly one scheduler and fired once.
    assert sum(claimed) == PEOPLE
    assert {(t.status, t.fired_at, t.error) for t in timers()} == {
        ("fired", manual_clock.now(), None)
    }
    # One delivery per (instance, step), one per trip, each sent once.
    planned = deliveries()
    assert len(planned) == PEOPLE
    assert len({(d.instance_id, d.step_path) for d in planned}) == PEOPLE
    assert {d.instance_id for d in planned} == {i.id for i in instances()}
    assert {(d.status, d.attempts) for d in planned} == {("sent", 1)}
    assert {i.status for i in instances()} == {"completed"}
    requests = providers.sendgrid.requests
    assert len(requests) == PEOPLE
    recipients = [r.body["personalizations"][0]["to"][0]["email"] for r in requests]
    assert sorted(recipients) == sorted(emails)
