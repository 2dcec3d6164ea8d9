"""Prometheus metrics at `GET /metrics`, through `prometheus_client` (the reference client:
the standard text exposition every Prometheus-compatible scraper reads, and a documented
multi-process mode for forked workers).

Two kinds of figures, chosen by where the truth is:

- Computed from the database and the broker at scrape time (a custom collector): queue depth,
  backlog, deliveries by channel and status, dead letters, timers due and late. They survive
  restarts and are the same whichever process is scraped, so never `sum()` them across API
  replicas (use `max()`, or scrape one replica).
- Observed in the process doing the work (histograms and counters): ingest latency and events
  ingested (API process), provider call latency and job retries (the process that delivers:
  `carillon serve`, or `carillon worker --metrics-port` where they are collected across the
  worker processes through prometheus_client's multiprocess mode). These are per process and
  start at zero on restart, as Prometheus counters do; `rate()` handles the resets.

Instrumentation stays out of business logic: a middleware times ingest requests, one wrapper
times provider calls, a dramatiq middleware counts retries.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from app import clock
from app.analytics import roi
from app.analytics.roi import CurrencyMismatch
from app.db import session_scope
from app.delivery.models import Delivery
from app.delivery.rate_limit import limiter
from app.ops import broker_state, budgets, queues
from app.queue import get_broker
from app.settings import get_settings
from channels import registry

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST


def _gauge(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


class StateCollector(Collector):
    """Figures read from the database and the broker on each scrape."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        broker_up = _gauge("carillon_broker_up", "1 when the queue broker answered this scrape.")
        database_up = _gauge("carillon_database_up", "1 when the database answered this scrape.")
        info = broker_state.inspect(get_broker(), queues.broker_queues())
        broker_up.add_metric([], 1.0 if info.reachable else 0.0)
        yield broker_up
        depth = _gauge(
            "carillon_queue_depth",
            "Messages on the broker per queue: ready, delayed (back-off), in_flight (fetched, "
            "not acknowledged).",
            ["queue", "state"],
        )
        oldest = _gauge(
            "carillon_queue_oldest_message_age_seconds",
            "Age of the oldest ready message on the broker, per queue.",
            ["queue"],
        )
        broker_dead = _gauge(
            "carillon_queue_dead_lettered_messages",
            "Jobs held in the broker's dead-letter queue, per queue.",
            ["queue"],
        )
        for name, figures in info.queues.items():
            depth.add_metric([name, "ready"], figures.ready)
            depth.add_metric([name, "delayed"], figures.delayed)
            depth.add_metric([name, "in_flight"], figures.in_flight)
            oldest.add_metric([name], figures.oldest_ready_age_seconds or 0.0)
            broker_dead.add_metric([name], figures.dead_lettered)
        yield from (depth, oldest, broker_dead)
        yield from self._rate_limits()
        try:
            yield from self._database()
            database_up.add_metric([], 1.0)
        except Exception:
            log.exception("metrics: the database could not be read")
            database_up.add_metric([], 0.0)
        yield database_up
        try:
            yield from self._budgets()
        except Exception:
            log.exception("metrics: budgets could not be read")
        try:
            yield from self._spend()
        except CurrencyMismatch as exc:  # `carillon report channels` says the same, exit 2
            log.warning("metrics: no cost and ROI figures: %s", exc)
        except Exception:
            log.exception("metrics: cost and ROI could not be read")

    def _spend(self) -> list[GaugeMetricFamily]:
        """What `carillon report channels` prints: cost, credited revenue and ROI per channel,
        in CARILLON_COST_CURRENCY; a channel whose cost is unknown has neither cost nor ROI."""
        settings = get_settings()
        with session_scope() as session:
            rows = roi.channels(session, settings)
        units = _gauge(
            "carillon_channel_billed_units",
            "Units providers billed per channel (SMS segments; one per message elsewhere).",
            ["channel"],
        )
        cost = _gauge(
            "carillon_channel_cost",
            "What the sent messages cost, per channel.",
            ["channel", "currency"],
        )
        revenue = _gauge(
            "carillon_channel_revenue",
            "Goal revenue credited last-touch to the channel's messages.",
            ["channel", "currency"],
        )
        ratio = _gauge(
            "carillon_channel_roi", "(revenue - cost) / cost per channel, as a ratio.", ["channel"]
        )
        for row in rows:
            channel = str(row.channel)
            units.add_metric([channel], row.units)
            revenue.add_metric([channel, row.currency], row.revenue)
            if row.cost is not None:
                cost.add_metric([channel, row.currency], row.cost)
            if row.roi is not None:
                ratio.add_metric([channel], row.roi)
        return [units, cost, revenue, ratio]

    def _budgets(self) -> list[GaugeMetricFamily]:
        """Each budget and its spend in the current period (`/ops/budgets`)."""
        labels = ["scope", "name", "period", "currency"]
        amount = _gauge("carillon_budget_amount", "What a budget allows per period.", labels)
        spent = _gauge(
            "carillon_budget_spent",
            "Spent against a budget in its current period (sent, sending or unknown messages).",
            labels,
        )
        with session_scope() as session:
            found = budgets.standings(session)
        for standing in found:
            names = [standing.scope, standing.name, standing.period, standing.currency]
            amount.add_metric(names, standing.amount)
            spent.add_metric(names, standing.spent)
        return [amount, spent]

    def _rate_limits(self) -> list[GaugeMetricFamily]:
        """The shared provider buckets (limited live channels only)."""
        tokens = _gauge(
            "carillon_rate_limit_tokens",
            "Tokens in the provider account's bucket (below zero: turns reserved by waiting "
            "workers).",
            ["channel"],
        )
        rate = _gauge(
            "carillon_rate_limit_per_second",
            "Calls per second the provider account's bucket allows now (halved after a 429).",
            ["channel"],
        )
        lowered = _gauge(
            "carillon_rate_limit_lowered", "1 while a 429 keeps the rate halved.", ["channel"]
        )
        for channel in registry.names():
            state = limiter().state(channel)
            if state is None or state.tokens is None or state.rate_per_second is None:
                continue
            tokens.add_metric([channel], state.tokens)
            rate.add_metric([channel], state.rate_per_second)
            lowered.add_metric([channel], 1.0 if state.lowered_until else 0.0)
        return [tokens, rate, lowered]

    def _database(self) -> list[GaugeMetricFamily]:
        with session_scope() as session:
            by_status = session.execute(
                select(Delivery.channel, Delivery.status, func.count()).group_by(
                    Delivery.channel, Delivery.status
                )
            ).all()
            backlog = queues.backlogs(session, clock.now())
        late_after = get_settings().timer_late_seconds
        deliveries = _gauge(
            "carillon_deliveries",
            "Deliveries by channel and current status (pending, sending, sent, dry_run, "
            "failed, dead, cancelled, suppressed, unknown).",
            ["channel", "status"],
        )
        for channel, status, count in by_status:
            deliveries.add_metric([channel, status], count)
        dead_gauge = _gauge(
            "carillon_dead_letters", "Deliveries that will not be sent unless replayed."
        )
        dead_gauge.add_metric([], backlog["dead_letters"].waiting)
        timers_due = _gauge("carillon_timers_due", "Journey waits due now, not yet fired.")
        timers_due.add_metric([], backlog["journeys"].waiting)
        timers_late = _gauge(
            "carillon_timers_late",
            f"Journey waits due for longer than CARILLON_TIMER_LATE_SECONDS ({late_after:g}s).",
        )
        timers_late.add_metric([], backlog["journeys"].late or 0)
        waiting = _gauge("carillon_backlog", "Work waiting in the database, per queue.", ["queue"])
        waiting_age = _gauge(
            "carillon_backlog_oldest_age_seconds",
            "Age of the oldest work waiting in the database, per queue.",
            ["queue"],
        )
        for name, row in backlog.items():
            waiting.add_metric([name], row.waiting)
            waiting_age.add_metric([name], row.oldest_age_seconds or 0.0)
        return [deliveries, dead_gauge, timers_due, timers_late, waiting, waiting_age]


_state_registry = CollectorRegistry(auto_describe=False)
_state_registry.register(StateCollector())


def exposition() -> bytes:
    """This process's metrics, then the figures read from the database and the broker."""
    return generate_latest(REGISTRY) + generate_latest(_state_registry)
