"""The three seed journeys running on the real database and queue, with a manual clock."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from app.db import session_scope
from app.journeys import catalog
from app.journeys.models import JourneyInstance, JourneyVersion
from app.journeys.timers import fire_due
from tests.helpers import SHIPPED, alice, at, cart, deliveries, instances, order, send, timers


def test_cart_reminder_is_sent_one_hour_later(manual_clock, pipeline) -> None:
    catalog.sync_directory(SHIPPED)
    send(pipeline, alice(), cart(42.5))
    [instance] = instances()
    assert (instance.journey_id, instance.status, instance.cursor) == (
        "cart-abandonment",
        "active",
        "0",
    )
    [timer] = timers()
    assert timer.due_at == manual_clock.now() + timedelta(hours=1)
    assert deliveries() == []

    manual_clock.advance(timedelta(minutes=59))
    assert fire_due(100) == 0
    manual_clock.advance(timedelta(minutes=1))
    assert fire_due(100) == 1
    pipeline.drain()

    [delivery] = deliveries()
    assert delivery.channel == "email"
    assert delivery.status == "dry_run"  # no SendGrid key in this test
    assert delivery.content["subject"] == "Alice, votre panier vous attend"
    assert "42.5 €" in delivery.content["text"]
    assert "https://shop.example/cart/1" in delivery.content["html"]
    assert instances()[0].status == "completed"


def test_a_broken_trip_does_not_hold_up_the_timers_fired_with_it(manual_clock, pipeline) -> None:
    catalog.sync_directory(SHIPPED)
    bob = {**alice(), "userId": "bob", "traits": {"email": "bob@example.com"}}
    send(pipeline, alice(), cart(42.5), bob, cart(50, user="bob"))
    broken_id, fine_id = (i.id for i in instances())
    with session_scope() as session:  # a version row that no longer parses, as if corrupted
        broken = session.get_one(JourneyInstance, broken_id)
        version = session.get_one(JourneyVersion, broken.journey_version_id)
        garbled = JourneyVersion(
            journey_id=version.journey_id,
            version=version.version + 1,
            checksum="garbled",
            file=version.file,
            source="steps: [",
            loaded_at=version.loaded_at,
        )
        session.add(garbled)
        session.flush()
        broken.journey_version_id = garbled.id

    manual_clock.advance(timedelta(hours=1))
    assert fire_due(100) == 2  # one batch: the failure is isolated within it
    pipeline.drain()
    by_instance = {t.instance_id: t for t in timers()}
    assert by_instance[broken_id].status == "error"
    assert by_instance[broken_id].error
    assert by_instance[fine_id].status == "fired"
    [delivery] = deliveries()
    assert (delivery.instance_id, delivery.status) == (fine_id, "dry_run")


def test_order_completed_cancels_the_pending_reminder(manual_clock, pipeline) -> None:
    catalog.sync_directory(SHIPPED)
    send(pipeline, alice(), cart(30))
    send(pipeline, order())
    [instance] = instances()
    assert instance.status == "exited"
    assert instance.exit_reason == "exit_when: Order Completed"
    assert [t.status for t in timers()] == ["cancelled"]
    manual_clock.advance(timedelta(hours=2))
    assert fire_due(100) == 0
    pipeline.drain()
    assert deliveries() == []


def test_order_processed_before_the_cart_it_follows_still_prevents_the_reminder(
    manual_clock, pipeline
) -> None:
    """Concurrent workers can process the order before the cart; event time decides."""
    catalog.sync_directory(SHIPPED)
    send(pipeline, alice(), order(minutes=5))
    send(pipeline, cart(50, minutes=1))
    assert instances() == []


def test_cart_under_20_euros_does_not_enter(pipeline) -> None:
    catalog.sync_directory(SHIPPED)
    send(
        pipeline,
        alice(),
        cart(19.99),
        {
            "type": "track",
            "userId": "alice",
            "event": "Cart Abandoned",
            "timestamp": at(2),
            "properties": {},
        },
    )
    assert instances() == []


def test_cooldown_blocks_reentry_for_seven_days(manual_clock, pipeline) -> None:
    catalog.sync_directory(SHIPPED)
    send(pipeline, alice(), cart(30))
    manual_clock.advance(timedelta(hours=1))
    fire_due(100)
    pipeline.drain()
    send(pipeline, cart(35, minutes=70))  # completed, but inside the 7-day cooldown
    assert len(instances()) == 1
    manual_clock.advance(timedelta(days=7))
    send(pipeline, cart(40, minutes=60 * 24 * 7 + 80))
    assert [i.status for i in instances()] == ["completed", "active"]


def test_newsletter_signup_sends_the_welcome_sms_at_once(pipeline) -> None:
    catalog.sync_directory(SHIPPED)
    send(
        pipeline,
        alice(),
        {"type": "track", "userId": "alice", "event": "Newsletter Subscribed", "timestamp": at(1)},
    )
    [delivery] = deliveries()
    assert delivery.channel == "sms"
    assert delivery.status == "dry_run"
    assert delivery.content["text"].startswith("Bienvenue Alice !")
    assert "BIENVENUE15" in delivery.content["text"]


def test_instagram_like_plans_a_custom_audience_add(pipeline) -> None:
    catalog.sync_directory(SHIPPED)
    send(
        pipeline,
        alice(),
        {"type": "track", "userId": "alice", "event": "Instagram Post Liked", "timestamp": at(1)},
    )
    [delivery] = deliveries()
    assert (delivery.channel, delivery.status) == ("meta_audience", "dry_run")
    assert delivery.content == {"audience_id": "23850000000000001"}


def test_a_message_that_cannot_render_is_recorded_with_the_reason(tmp_path: Path, pipeline) -> None:
    (tmp_path / "j.yaml").write_text(
        "id: strict\nname: Strict\ntrigger: {event: Signed Up}\n"
        "steps:\n  - send: {channel: sms, text: 'Hi {{ profile.traits.nickname }}'}\n"
    )
    catalog.sync_directory(tmp_path)
    send(pipeline, {"type": "track", "userId": "bob", "event": "Signed Up", "timestamp": at(0)})
    [delivery] = deliveries()
    assert delivery.status == "failed"
    assert "nickname" in (delivery.error or "")


def test_a_queue_message_delivered_twice_makes_one_delivery(pipeline) -> None:
    from app.delivery.tasks import send_job

    catalog.sync_directory(SHIPPED)
    send(
        pipeline,
        alice(),
        {"type": "track", "userId": "alice", "event": "Newsletter Subscribed", "timestamp": at(1)},
    )
    [delivery] = deliveries()
    send_job("sms").send(delivery.id)
    pipeline.drain()
    [again] = deliveries()
    assert again.attempts == 1
