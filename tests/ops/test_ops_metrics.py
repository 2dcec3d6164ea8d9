"""`GET /metrics`: valid Prometheus exposition, conventional names, figures that match what
happened (deliveries by channel and status, ingest, provider latency, timers, retries)."""

from __future__ import annotations

import threading
from datetime import timedelta

import dramatiq
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from app.clock import ManualClock
from app.events import routing
from app.journeys import catalog
from app.tasks import broker
from tests.helpers import REPO, Pipeline, bearer, ingest, newsletter_signup
from tests.processes import wait_until

FLAKY_RUNS: list[int] = []
FLAKY_DONE = threading.Event()


@dramatiq.actor(
    broker=broker, queue_name="ops_test", actor_name="ops_test.flaky", min_backoff=1, max_backoff=1
)
def flaky() -> None:
    """Fails on its first run, succeeds on the second: one retry."""
    FLAKY_RUNS.append(1)
    if len(FLAKY_RUNS) == 1:
        raise RuntimeError("first run fails")
    FLAKY_DONE.set()


def scrape(client: TestClient) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    answer = client.get("/metrics", headers=bearer())
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[key] = sample.value
    return samples


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_names_follow_prometheus_conventions(client: TestClient, admin: str) -> None:
    answer = client.get("/metrics", headers=bearer())
    families = list(text_string_to_metric_families(answer.text))
    ours = {f.name: f for f in families if f.name.startswith("carillon_")}
    expected = {
        "carillon_events_ingested": "counter",
        "carillon_events_dropped_erased": "counter",
        "carillon_ingest_duration_seconds": "histogram",
        "carillon_provider_request_duration_seconds": "histogram",
        "carillon_job_retries": "counter",
        "carillon_jobs_dead_lettered": "counter",
        "carillon_queue_depth": "gauge",
        "carillon_queue_oldest_message_age_seconds": "gauge",
        "carillon_queue_dead_lettered_messages": "gauge",
        "carillon_backlog": "gauge",
        "carillon_backlog_oldest_age_seconds": "gauge",
        "carillon_deliveries": "gauge",
        "carillon_dead_letters": "gauge",
        "carillon_timers_due": "gauge",
        "carillon_timers_late": "gauge",
        "carillon_broker_up": "gauge",
        "carillon_database_up": "gauge",
        "carillon_rate_limit_tokens": "gauge",
        "carillon_rate_limit_per_second": "gauge",
        "carillon_rate_limit_lowered": "gauge",
        "carillon_channel_billed_units": "gauge",
        "carillon_channel_cost": "gauge",
        "carillon_channel_revenue": "gauge",
        "carillon_channel_roi": "gauge",
        "carillon_budget_amount": "gauge",
        "carillon_budget_spent": "gauge",
    }
    assert {name: f.type for name, f in ours.items()} == expected
    assert "# TYPE carillon_events_ingested_total counter" in answer.text
    for family in families:
        if family.type == "counter":
            assert all(s.name.endswith("_total") for s in family.samples)
        if family.type == "histogram":
            assert family.name.endswith("_seconds")


def test_figures_follow_what_happened(client: TestClient, admin: str, pipeline: Pipeline) -> None:
    catalog.sync_directory(REPO / "journeys")
    ingested = value("carillon_events_ingested_total", type="track", source="default")
    timed = value("carillon_ingest_duration_seconds_count", endpoint="/v1/batch", status="200")
    calls = value(
        "carillon_provider_request_duration_seconds_count", channel="sms", outcome="dry_run"
    )

    body = {"batch": newsletter_signup("ada") + newsletter_signup("bea", "+33698765432")}
    assert client.post("/v1/batch", json=body, auth=("test-key", "")).status_code == 200
    refused = client.post("/v1/batch", json={"batch": []}, auth=("test-key", ""))
    assert refused.status_code == 400
    pipeline.drain()

    samples = scrape(client)
    # Two welcome SMS, dry run (no Twilio credentials).
    assert samples["carillon_deliveries"][(("channel", "sms"), ("status", "dry_run"))] == 2
    assert samples["carillon_dead_letters"][()] == 0
    assert samples["carillon_backlog"][(("queue", "events"),)] == 0
    assert samples["carillon_queue_depth"][(("queue", "sms"), ("state", "ready"))] == 0
    assert samples["carillon_broker_up"][()] == 1
    assert samples["carillon_database_up"][()] == 1
    # In-process counters and histograms moved by exactly this test's work.
    assert value("carillon_events_ingested_total", type="track", source="default") == ingested + 2
    assert (
        value("carillon_ingest_duration_seconds_count", endpoint="/v1/batch", status="200")
        == timed + 1
    )
    assert value("carillon_ingest_duration_seconds_count", endpoint="/v1/batch", status="400") >= 1
    assert (
        value("carillon_provider_request_duration_seconds_count", channel="sms", outcome="dry_run")
        == calls + 2
    )


def test_unknown_paths_add_no_series(client: TestClient, admin: str) -> None:
    for n in range(3):
        client.post(f"/v1/nothing-{n}", json={})
    text = client.get("/metrics", headers=bearer()).text
    assert "nothing-" not in text
    assert 'endpoint="unmatched"' in text


def test_timers_due_and_late(client: TestClient, admin: str, manual_clock: ManualClock) -> None:
    catalog.sync_directory(REPO / "journeys")
    for user in ("ann", "ben"):
        cart = {
            "type": "track",
            "userId": user,
            "event": "Cart Abandoned",
            "properties": {"total": 40, "cart_url": "https://shop.example/c"},
        }
        for event_id in ingest(cart):
            routing.process_one(event_id)
        manual_clock.advance(timedelta(seconds=90))
    # ann's wait was due 90 s ago, ben's is due now.
    manual_clock.advance(timedelta(hours=1) - timedelta(seconds=90))
    samples = scrape(client)
    assert samples["carillon_timers_due"][()] == 2
    assert samples["carillon_timers_late"][()] == 1
    assert samples["carillon_backlog"][(("queue", "journeys"),)] == 2


def test_a_retried_job_is_counted(admin: str, pipeline: Pipeline) -> None:
    before = value("carillon_job_retries_total", queue="ops_test")
    FLAKY_RUNS.clear()
    FLAKY_DONE.clear()
    flaky.send()
    wait_until("the flaky job succeeds on retry", FLAKY_DONE.is_set, 30, [])
    assert len(FLAKY_RUNS) == 2
    assert value("carillon_job_retries_total", queue="ops_test") == before + 1
