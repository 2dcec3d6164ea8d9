"""The metrics observed in the process doing the work: counters and histograms kept in memory
(per process; see app/ops/metrics.py for the multi-process story) and the small hooks that
feed them, kept out of business logic: an HTTP middleware hook, one wrapper around provider
calls, a dramatiq middleware.

Imported by the delivery service, so it depends on nothing but prometheus_client and the
channel protocol.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware
from prometheus_client import Counter, Histogram, disable_created_metrics

from channels.base import Message, SendResult

log = logging.getLogger(__name__)

# No `_created` series next to every counter: scrapers do not need them, people reading do not.
disable_created_metrics()

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

EVENTS_INGESTED = Counter(
    "carillon_events_ingested_total",
    "Events accepted by the tracking API (a resent messageId counts again; it is stored once).",
    ["type", "source"],
)
INGEST_SECONDS = Histogram(
    "carillon_ingest_duration_seconds",
    "Tracking API requests, from arrival to the answer (sent after the commit).",
    ["endpoint", "status"],
    buckets=LATENCY_BUCKETS,
)
PROVIDER_SECONDS = Histogram(
    "carillon_provider_request_duration_seconds",
    "Provider calls (SendGrid, Twilio, Meta; dry runs too), by channel and outcome.",
    ["channel", "outcome"],
    buckets=LATENCY_BUCKETS,
)
EVENTS_DROPPED_ERASED = Counter(
    "carillon_events_dropped_erased_total",
    "Events acknowledged and dropped because they name an erased person (stage: ingest, or "
    "routing for one stored just before the erasure).",
    ["stage"],
)
JOB_RETRIES = Counter(
    "carillon_job_retries_total",
    "Queue jobs that raised and were re-enqueued with back-off.",
    ["queue"],
)
JOBS_DEAD_LETTERED = Counter(
    "carillon_jobs_dead_lettered_total",
    "Queue jobs that ran out of retries (their rows stay due; the sweeper hands them over).",
    ["queue"],
)


def count_ingested(source: str, types: list[str]) -> None:
    for kind in types:
        EVENTS_INGESTED.labels(kind, source).inc()


def count_dropped_erased(stage: str, count: int = 1) -> None:
    if count:
        EVENTS_DROPPED_ERASED.labels(stage).inc(count)


def observe_provider_call(message: Message, result: SendResult | None, seconds: float) -> None:
    """One provider call into the latency histogram (outcome `error`: the adapter raised)."""
    outcome = result.outcome.value if result is not None else "error"
    PROVIDER_SECONDS.labels(message.channel, outcome).observe(seconds)
    if result is not None:
        log.info(
            "provider answered: %s",
            outcome,
            extra={
                "channel": message.channel,
                "provider_message_id": result.provider_message_id,
                "status_code": result.status_code,
            },
        )


def observe_request(scope: Mapping[str, Any], status: int, seconds: float) -> None:
    """Time a `/v1/*` request into the ingest latency histogram (other paths are not ingest)."""
    if not scope["path"].startswith("/v1/"):
        return
    # The route's template, never the raw path: an unknown path must not add a series.
    endpoint = getattr(scope.get("route"), "path", "unmatched")
    INGEST_SECONDS.labels(endpoint, str(status)).observe(seconds)


class JobMetrics(Middleware):
    """dramatiq middleware: counts retries (a re-enqueue carrying `retries`) and jobs that
    ran out of them (nacked to the broker's dead-letter queue)."""

    def after_enqueue(self, broker: dramatiq.Broker, message: Any, delay: int | None) -> None:
        # A retry is enqueued with its back-off delay; the later move from the delay queue
        # to the queue itself (no delay) is the same retry, not another.
        if message.options.get("retries") and delay is not None:
            JOB_RETRIES.labels(_queue(message.queue_name)).inc()

    def after_nack(self, broker: dramatiq.Broker, message: Any) -> None:
        JOBS_DEAD_LETTERED.labels(_queue(message.queue_name)).inc()


def _queue(name: str) -> str:
    return name.removesuffix(".DQ").removesuffix(".XQ")
