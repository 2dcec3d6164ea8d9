"""`DELETE /v1/profiles/{id}`: nothing of the person left in any table, nothing more sent, the
audiences they joined told to forget them, and later events about them dropped."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import inspect, select, text

from app import clock, scheduler
from app.db import get_engine, session_scope
from app.delivery.models import Delivery
from app.events import routing
from app.events.models import Event
from app.journeys.models import JourneyInstance, Timer
from app.ops import metrics
from app.profiles.models import Profile, ProfileAudit
from tests.helpers import Pipeline, event_count, identify, track
from tests.profiles.conftest import (
    ADMIN,
    ANONYMOUS,
    EMAIL,
    PHONE,
    USER,
    bearer,
    post,
    shopper,
)

SECRETS = (USER, ANONYMOUS, EMAIL, PHONE)


def everything_stored() -> dict[str, list[str]]:
    """Every row of every table in the database (not only the ones the code knows), as text."""
    engine = get_engine()
    rows: dict[str, list[str]] = {}
    with engine.connect() as connection:
        for table in inspect(engine).get_table_names():
            found = connection.execute(text(f"SELECT * FROM {table}")).mappings()
            rows[table] = [json.dumps(dict(row), default=str, ensure_ascii=False) for row in found]
    return rows


def traces(secret: str) -> dict[str, int]:
    found = {t: sum(secret in row for row in rows) for t, rows in everything_stored().items()}
    return {table: count for table, count in found.items() if count}


def erase(client: TestClient, person_id: str = f"email:{EMAIL}") -> Any:
    return client.delete(f"/v1/profiles/{person_id}", headers=bearer(ADMIN))


def test_nothing_of_the_person_is_left_in_any_table(client: TestClient, pipeline: Pipeline) -> None:
    shopper(client, pipeline)
    assert all(traces(secret) for secret in SECRETS)  # the scan sees them before
    pipeline.worker.stop()  # the audience removal waits in the queue

    answer = erase(client)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "erased"
    # The audience removal is planned and needs the contact to reach Meta: only the contact
    # identities wait for it, everything else is gone already.
    assert traces(USER) == {} and traces(ANONYMOUS) == {}
    assert set(traces(EMAIL)) == set(traces(PHONE)) == {"profile_identities"}
    scheduler.sweep()
    assert set(traces(EMAIL)) == {"profile_identities"}  # not while the removal is pending

    restarted = Pipeline()
    restarted.worker.start()
    try:
        restarted.drain()  # the removal goes out (a dry run here)
    finally:
        restarted.worker.stop()
    scheduler.sweep()  # the scheduler's sweep finishes settled erasures

    for secret in SECRETS:
        assert traces(secret) == {}, secret
    with session_scope() as session:
        removal = session.scalars(select(Delivery).where(Delivery.step_path.like("%/remove"))).one()
        assert removal.channel == "meta_audience" and removal.status == "dry_run"


def test_live_trips_end_and_pending_messages_are_cancelled(
    client: TestClient, pipeline: Pipeline
) -> None:
    shopper(client, pipeline)
    assert erase(client).status_code == 200
    with session_scope() as session:
        trips = session.scalars(select(JourneyInstance)).all()
        assert {t.status for t in trips} == {"completed", "exited"}
        cart = next(t for t in trips if t.journey_id == "cart-abandonment")
        assert cart.exit_reason == "the person's data was erased"
        timers = session.scalars(select(Timer).where(Timer.instance_id == cart.id)).all()
        assert [t.status for t in timers] == ["cancelled"]


def test_erasing_twice_answers_the_same_and_deletes_nothing_more(
    client: TestClient, pipeline: Pipeline
) -> None:
    shopper(client, pipeline)
    first = erase(client)
    pipeline.drain()
    scheduler.sweep()
    before = everything_stored()
    again = [erase(client, ref) for ref in (f"email:{EMAIL}", USER, f"phone:{PHONE}")]
    assert [a.status_code for a in again] == [200, 200, 200]
    assert all(a.json() == first.json() for a in again)
    after = everything_stored()
    audit = after.pop("profile_audit")
    before.pop("profile_audit")
    assert after == before
    assert len(audit) == 4
    with session_scope() as session:
        rows = session.scalars(select(ProfileAudit).order_by(ProfileAudit.id)).all()
        assert [r.action for r in rows] == ["erase"] * 4
        assert {r.actor for r in rows} == {"admin token"}
        assert rows[0].detail["identities_hashed"] == 4
        assert rows[1].detail["identities_deleted"] == 0
        assert rows[1].detail["traits_deleted"] == 0
        assert rows[1].detail["events_scrubbed"] == 0
        assert rows[1].detail["messages_scrubbed"] == 0
        assert rows[0].detail["messages_scrubbed"] == 2  # the welcome SMS, the audience join
    assert all(ADMIN not in row for row in audit)  # the token is named, never stored


def test_an_erased_person_is_gone_for_show_and_export(
    client: TestClient, pipeline: Pipeline
) -> None:
    shopper(client, pipeline)
    erase(client)
    for path in (f"/v1/profiles/{USER}", f"/v1/profiles/email:{EMAIL}/export"):
        answer = client.get(path, headers=bearer(ADMIN))
        assert answer.status_code == 410
        assert "erased at" in answer.json()["message"]


def _dropped(stage: str) -> float:
    for line in metrics.exposition().decode().splitlines():
        if line.startswith(f'carillon_events_dropped_erased_total{{stage="{stage}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_later_events_for_an_erased_identity_are_acknowledged_dropped_and_counted(
    client: TestClient, pipeline: Pipeline
) -> None:
    shopper(client, pipeline)
    erase(client)
    pipeline.drain()
    scheduler.sweep()
    stored, dropped = event_count(), _dropped("ingest")
    post(
        client,
        track(USER, "Cart Abandoned", {"total": 50}),
        {"type": "track", "anonymousId": ANONYMOUS, "event": "Product Viewed"},
        identify("brand-new-user", {"email": EMAIL}),
        identify("other-new-user", {"phone": PHONE}),
        {"type": "alias", "userId": "renamed", "previousId": USER},
    )
    pipeline.drain()
    assert event_count() == stored
    assert _dropped("ingest") == dropped + 5
    # Someone else is stored and routed as usual.
    post(client, track("someone-else", "Product Viewed"))
    pipeline.drain()
    assert event_count() == stored + 1
    with session_scope() as session:
        profiles = session.scalars(select(Profile)).all()
        assert sum(p.erased_at is None for p in profiles) == 1  # someone-else only
    for secret in SECRETS:
        assert traces(secret) == {}, secret


def test_an_event_stored_while_the_erasure_commits_is_dropped_at_routing(
    client: TestClient, pipeline: Pipeline
) -> None:
    """Ingest checked the erased identities just before the erasure committed, so the event is
    stored: routing checks again and drops it instead of re-creating the person."""
    shopper(client, pipeline)
    erase(client)
    pipeline.drain()
    scheduler.sweep()
    dropped = _dropped("routing")
    now = clock.now()
    with session_scope() as session:
        late = Event(
            source="default",
            message_id="late-1",
            type="identify",
            user_id=USER,
            timestamp=now,
            received_at=now,
            payload={"type": "identify", "userId": USER, "traits": {"email": EMAIL}},
            enqueued_at=now,
        )
        session.add(late)
    routing.process_one(late.id)
    assert _dropped("routing") == dropped + 1
    for secret in SECRETS:
        assert traces(secret) == {}, secret
    with session_scope() as session:
        assert session.get_one(Event, late.id).processed_at is not None
        profiles = session.scalars(select(Profile)).all()
        assert all(p.erased_at is not None for p in profiles)
