"""The ambiguous window: a delivery claimed (`sending`) whose worker died during the provider
call. In-process with a manual clock, on the suite's database: the claim is the real one, the
provider call simply never happens, as when the worker is killed mid-call."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.clock import ManualClock
from app.db import session_scope
from app.delivery import service
from app.errors import Conflict
from app.journeys import catalog
from app.main import create_app
from app.ops import dead_letters, queues
from app.settings import Settings, get_settings
from app.sweeper import sweep_deliveries
from app.tasks import broker
from tests.helpers import (
    SHIPPED,
    TOKEN,
    Pipeline,
    Providers,
    alice,
    deliveries,
    ingest,
    instagram_like,
    newsletter,
    process,
)

TIMEOUT = timedelta(seconds=get_settings().sending_timeout_seconds)
SWEEP_AGE = timedelta(seconds=30)


def _abandoned_claim(event: dict[str, Any]) -> int:
    """Route `event` inline, then claim its delivery the way a worker does and never answer."""
    catalog.sync_directory(SHIPPED)
    ids = ingest(alice(), event)
    broker.flush_all()
    process(ids)
    broker.flush_all()  # the send job: the worker that took it is about to die
    [delivery] = deliveries()
    assert service._claim(delivery.id) is not None
    [delivery] = deliveries()
    assert (delivery.status, delivery.attempts) == ("sending", 1)
    return delivery.id


def test_an_abandoned_sms_becomes_unknown_and_is_only_sent_again_by_a_person(
    manual_clock: ManualClock,
    idle_pipeline: Pipeline,
    providers: Providers,
    settings_env: pytest.MonkeyPatch,
) -> None:
    delivery_id = _abandoned_claim(newsletter())
    idle_pipeline.worker.start()

    # A live provider call may still be running: before the timeout the row is left alone.
    manual_clock.advance(TIMEOUT - timedelta(seconds=1))
    sweep_deliveries(SWEEP_AGE)
    assert [d.status for d in deliveries()] == ["sending"]

    manual_clock.advance(timedelta(seconds=1))
    sweep_deliveries(SWEEP_AGE)
    idle_pipeline.drain()
    [delivery] = deliveries()
    assert delivery.status == "unknown"
    assert "may or may not have been sent" in (delivery.error or "")
    assert providers.twilio.requests == []  # never resent automatically…
    manual_clock.advance(TIMEOUT * 2)
    sweep_deliveries(SWEEP_AGE)
    idle_pipeline.drain()
    assert providers.twilio.requests == []  # …however long it waits

    # Ops see it as needing review, among the dead letters, with its story.
    with session_scope() as session:
        snapshot = queues.snapshot(session)
    assert snapshot.row("sms").backlog.needs_review == 1
    assert snapshot.row("dead_letters").backlog.waiting == 1
    with session_scope() as session:
        [letter] = dead_letters.listing(session)
    assert (letter.id, letter.status) == (delivery_id, "unknown")
    settings_env.setenv("CARILLON_ADMIN_TOKEN", TOKEN)
    get_settings.cache_clear()
    dashboard = TestClient(create_app())
    dashboard.post("/ops/login", data={"token": TOKEN})
    page = dashboard.get("/ops")
    assert page.status_code == 200, page.text
    assert 'data-field="needs-review">1 to review<' in page.text

    # Replay is the human decision: once replayed it is sent, once.
    with session_scope() as session:
        assert dead_letters.replay(session, delivery_id).replayed
    idle_pipeline.drain()
    assert len(providers.twilio.requests) == 1
    assert [d.status for d in deliveries()] == ["sent"]


def test_an_abandoned_meta_audience_add_is_resent_once(
    manual_clock: ManualClock, idle_pipeline: Pipeline, providers: Providers
) -> None:
    delivery_id = _abandoned_claim(instagram_like())
    idle_pipeline.worker.start()
    manual_clock.advance(TIMEOUT)
    sweep_deliveries(SWEEP_AGE)
    idle_pipeline.drain()

    assert len(providers.meta.requests) == 1
    [delivery] = deliveries()
    assert (delivery.id, delivery.status, delivery.attempts) == (delivery_id, "sent", 2)
    # Sent is sent: later sweeps find nothing to resend.
    manual_clock.advance(TIMEOUT * 2)
    sweep_deliveries(SWEEP_AGE)
    idle_pipeline.drain()
    assert len(providers.meta.requests) == 1


def test_a_replay_of_a_delivery_still_sending_is_refused(
    manual_clock: ManualClock, providers: Providers
) -> None:
    delivery_id = _abandoned_claim(newsletter())
    with pytest.raises(Conflict, match="is sending"), session_scope() as session:
        dead_letters.replay(session, delivery_id)
    assert [d.status for d in deliveries()] == ["sending"]


def test_a_sending_timeout_shorter_than_a_provider_call_is_refused() -> None:
    with pytest.raises(ValidationError, match="CARILLON_SENDING_TIMEOUT_SECONDS"):
        Settings(sending_timeout_seconds=10, provider_timeout_seconds=10)
