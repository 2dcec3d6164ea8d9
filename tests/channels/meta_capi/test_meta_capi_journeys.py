"""Conversion events end to end: journey files loaded as `serve` loads them, events stored and
routed by the real code, deliveries made by the worker's own job body (or by the worker), the
Conversions API stand-in on the other end. Settings reach the channel through the environment.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from app import clock
from app.clock import ManualClock
from app.delivery import models, service
from app.journeys.language.files import JourneyInvalid, parse_journey
from app.settings import get_settings
from app.sweeper import sweep_deliveries
from app.tasks import broker
from channels.meta_capi.adapter import MetaConversions
from channels.meta_capi.settings import MetaCapiSettings
from tests.channels.meta_capi.graph_events import TEST_PIXEL_ID, MetaEventsServer
from tests.helpers import (
    T0,
    Pipeline,
    assert_no_raw_identifier,
    configure,
    deliver,
    deliveries,
    held,
    ingest,
    load,
    person,
    route,
    sha256,
)
from tests.providers.meta import graph_error

RAW = ("alice@example.com", "+33612345678", "33612345678", "0612345678")

PURCHASES = """\
id: purchase-signal
name: Purchases reported to Meta
trigger:
  event: Order Completed
re_entry: always
messages:
  purchase:
    meta_capi:
      event_name: Purchase
      event_id: "{{ event.properties.order_id }}"
      event_time: "{{ event.timestamp }}"
      value: "{{ event.properties.total }}"
      currency: EUR
      event_source_url: "{{ event.context.page.url | default('') }}"
      client_user_agent: "{{ event.context.userAgent | default('') }}"
steps:
  - send: {channel: meta_capi, message: purchase}
"""


def order(user: str = "alice", total: Any = 42.5, order_id: str = "1001") -> dict[str, Any]:
    return {
        "type": "track",
        "userId": user,
        "event": "Order Completed",
        "properties": {"order_id": order_id, "total": total},
        "timestamp": T0.isoformat(),
        "context": {
            "page": {"url": "https://shop.example/thanks"},
            "userAgent": "Mozilla/5.0 (X11; Linux x86_64)",
        },
    }


@pytest.fixture
def journeys(tmp_path: Path) -> Path:
    load(tmp_path, PURCHASES)
    return tmp_path


@pytest.fixture
def meta(
    settings_env: pytest.MonkeyPatch, capi: MetaEventsServer, manual_clock: ManualClock
) -> MetaEventsServer:
    """The channel configured (token, Graph URL, pixel) and pointed at the stand-in, whose
    clock is the test's."""
    configure(settings_env, {**capi.settings_overrides(), "meta_pixel_id": TEST_PIXEL_ID})
    capi.now = lambda: clock.now().timestamp()
    return capi


def only_row() -> models.Delivery:
    [delivery] = deliveries()
    return delivery


def test_a_purchase_reaches_the_pixel_with_the_order_id_to_deduplicate_on(
    journeys: Path, meta: MetaEventsServer
) -> None:
    route(person("alice"), order())
    planned = only_row()
    assert (planned.channel, planned.status) == ("meta_capi", models.PENDING)
    # What will be sent, complete, on the row.
    assert planned.content == {
        "event_name": "Purchase",
        "event_id": "1001",
        "event_time": str(int(T0.timestamp())),
        "value": "42.5",
        "currency": "EUR",
        "action_source": "website",
        "event_source_url": "https://shop.example/thanks",
        "client_user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
    }

    sent = deliver(planned.id)

    assert (sent.status, sent.status_code, sent.provider_message_id) == ("sent", 200, "1001")
    assert sent.error is None
    [request] = meta.requests
    assert request.path == f"/v21.0/{TEST_PIXEL_ID}/events"
    [event] = meta.events
    assert event["event_name"] == "Purchase" and event["event_id"] == "1001"
    assert event["event_time"] == int(T0.timestamp())
    assert event["custom_data"] == {"value": 42.5, "currency": "EUR"}
    assert event["user_data"]["em"] == [sha256("alice@example.com")]
    assert event["user_data"]["ph"] == [sha256("33612345678")]
    assert event["user_data"]["external_id"] == [sha256(sent.profile_id)]
    assert_no_raw_identifier(request, *RAW)


def test_the_worker_takes_it_from_the_channels_own_queue(
    journeys: Path, meta: MetaEventsServer, pipeline: Pipeline
) -> None:
    ingest(person("alice"), order())
    pipeline.drain()  # the events; the delivery job goes to the queue named after the channel
    broker.join("meta_capi", timeout=60_000)
    pipeline.worker.join()

    assert only_row().status == "sent"
    assert [e["event_id"] for e in meta.events] == ["1001"]


def test_a_person_who_objected_to_ads_is_not_reported(
    journeys: Path, meta: MetaEventsServer
) -> None:
    route(person("bob", ads_consent="denied"), order("bob"))

    suppressed = deliver(only_row().id)

    assert (suppressed.status, suppressed.error) == ("suppressed", "suppressed: ads denied")
    assert [kind for kind, _ in held(suppressed.id)] == ["suppressed"]
    assert meta.requests == []


def test_an_outage_is_retried_and_meta_counts_the_purchase_once(
    journeys: Path, meta: MetaEventsServer, manual_clock: ManualClock
) -> None:
    meta.fail_next(503, graph_error(2, "Service temporarily unavailable"))
    route(person("alice"), order())

    first = deliver(only_row().id)
    assert (first.status, first.attempts, first.status_code) == ("pending", 1, 503)
    assert "Service temporarily unavailable" in (first.error or "")
    assert first.next_attempt_at is not None

    manual_clock.advance(first.next_attempt_at - manual_clock.now() + timedelta(seconds=1))
    second = deliver(first.id)

    assert (second.status, second.attempts) == ("sent", 2)
    outage, success = meta.requests
    assert outage.raw_body == success.raw_body  # the same event, the same time
    assert len(meta.counted) == 1


def test_a_refusal_fails_at_once_with_metas_words(journeys: Path, meta: MetaEventsServer) -> None:
    words = "(#100) Invalid parameter"
    meta.fail_next(400, graph_error(100, words))
    route(person("alice"), order())

    failed = deliver(only_row().id)

    assert (failed.status, failed.attempts, failed.status_code) == ("failed", 1, 400)
    assert failed.error == f"100: {words}"
    assert failed.sent_at is None
    assert len(meta.requests) == 1


@pytest.mark.parametrize(
    ("total", "reason"),
    [
        ("quarante", "value 'quarante' is not a number, e.g. 42.50"),
        ("", "Meta requires value and currency for Purchase events"),
    ],
)
def test_content_meta_would_refuse_fails_the_delivery_when_the_step_runs(
    journeys: Path, meta: MetaEventsServer, total: Any, reason: str
) -> None:
    """`value` renders from the event: a wrong one is the delivery's reason, nothing sent."""
    route(person("alice"), order(total=total))

    failed = only_row()

    assert failed.status == "failed"
    assert (failed.error or "").startswith(reason)
    assert meta.requests == []


def test_a_call_abandoned_mid_way_is_resent_and_counted_once(
    journeys: Path, meta: MetaEventsServer, manual_clock: ManualClock
) -> None:
    """The worker reached Meta, then died before recording the answer: after the sending
    timeout the sweeper resends the row, and Meta deduplicates the repeat on its event_id."""
    route(person("alice"), order())
    broker.flush_all()
    claimed = service._claim(only_row().id)
    assert claimed is not None
    own = MetaCapiSettings(meta_pixel_id=TEST_PIXEL_ID, meta_capi_test_event_code=None)
    assert MetaConversions(get_settings(), own).send(claimed).provider_message_id == "1001"
    assert only_row().status == "sending"  # nothing recorded: the worker is gone

    manual_clock.advance(timedelta(seconds=get_settings().sending_timeout_seconds + 1))
    sweep_deliveries(timedelta(seconds=30))
    assert only_row().status == "pending"
    resent = deliver(only_row().id)

    assert (resent.status, resent.provider_message_id) == ("sent", "1001")
    first, second = meta.requests
    assert first.raw_body == second.raw_body
    assert (len(meta.events), len(meta.counted)) == (2, 1)


def test_without_the_token_the_event_runs_dry(
    journeys: Path, settings_env: pytest.MonkeyPatch, capi: MetaEventsServer
) -> None:
    configure(settings_env, {"meta_access_token": None, "meta_graph_url": capi.base_url})
    route(person("alice"), order())

    dry = deliver(only_row().id)

    assert dry.status == "dry_run"
    assert (dry.error or "").startswith(
        "dry run: channel meta_capi has no provider credentials configured, nothing was sent"
    )
    assert dry.content["event_id"] == "1001"
    assert capi.requests == []


# --------------------------------------------------------------------------- bad journey files


def issues(text: str) -> list[str]:
    with pytest.raises(JourneyInvalid) as invalid:
        parse_journey(text, "purchases.yaml")
    return [str(issue) for issue in invalid.value.issues]


def test_a_message_without_its_event_name_is_reported_where_it_is() -> None:
    text = PURCHASES.replace("      event_name: Purchase\n", "")
    assert issues(text) == [
        "purchases.yaml:8:5: messages.purchase.meta_capi is missing required key 'event_name'"
    ]


def test_a_misspelt_key_is_reported_with_the_right_one() -> None:
    text = PURCHASES.replace("      currency: EUR", "      curency: EUR")
    [issue] = issues(text)
    assert issue.startswith("purchases.yaml:13:7: unknown key 'curency' in messages.purchase")
    assert "did you mean 'currency'?" in issue


def test_a_template_mistake_is_reported_inside_the_text() -> None:
    text = PURCHASES.replace("event.properties.order_id }}", "event.properties.order_id }")
    [issue] = issues(text)
    assert issue.startswith("purchases.yaml:10:")
    assert "messages.purchase.meta_capi.event_id" in issue
