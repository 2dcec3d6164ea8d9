"""The ops JSON API, every route behind the admin token (`require_admin`).

GET  /ops/queues                          queue state (see app/ops/queues.py)
GET  /ops/dead-letters?limit=50           newest dead letters
POST /ops/dead-letters/{id}/replay        put one back in the outbox (idempotent)
GET  /ops/deliveries/{id}                 a delivery's story
GET  /ops/journeys                        people per journey step
GET  /ops/channels                        per channel results, cost, conversions
GET  /ops/ad-spend                        reading the configured ad sets' spend: stale or not, why
GET  /ops/segments                        segments and stages: members, backfill progress
GET  /ops/experiments?min_per_arm=500      every split's A/B test results (app/analytics/)
GET  /ops/experiments/{journey_id}        one journey's (404: not loaded, or no split)
GET  /ops/broadcasts                      every started broadcast's progress, newest first
GET  /ops/broadcasts/{broadcast_id}       one broadcast's (404: never started)
GET  /ops/summary                         all of the above at once (the dashboard polls it)
GET  /metrics                             Prometheus exposition
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response
from sqlalchemy.orm import Session

from app.analytics import experiments, report, spend
from app.analytics.repository import UnknownExperiment
from app.broadcasts import progress
from app.db import DbSession
from app.errors import NotFound
from app.ops import budgets, dead_letters, kpis, metrics, queues, story
from app.ops.auth import require_admin
from app.segments import catalog, directory

router = APIRouter(prefix="/ops", tags=["ops"], dependencies=[Depends(require_admin)])
metrics_router = APIRouter(tags=["ops"], dependencies=[Depends(require_admin)])

Limit = Annotated[int, Query(ge=1, le=500, description="How many, newest first.")]
# Delivery ids are BIGINT: a larger number is no delivery, and the database would refuse it.
DeliveryId = Annotated[int, Path(ge=1, le=2**63 - 1, description="A delivery's id.")]
JourneyId = Annotated[str, Path(min_length=1, max_length=100, description="A journey's id.")]
BroadcastId = Annotated[
    str, Path(min_length=1, max_length=100, description="A started broadcast's id.")
]
MinPerArm = Annotated[
    int, Query(ge=1, le=10**9, description="People every arm needs before a winner is called.")
]

# The routes are plain functions: FastAPI runs them on its thread pool, off the event loop.


def summary(
    session: Session, limit: int = 50, found: list[report.ExperimentReport] | None = None
) -> dict[str, Any]:
    """`found`: the experiments' results when the caller has them already (the dashboard
    draws them too)."""
    return {
        "queues": queues.snapshot(session).as_dict(),
        "dead_letters": [d.as_dict() for d in dead_letters.listing(session, limit)],
        "journeys": kpis.as_dicts(kpis.journeys(session)),
        "channels": kpis.as_dicts(kpis.channels(session)),
        "experiments": report.as_dicts(report.results(session) if found is None else found),
        "broadcasts": [shown.as_dict() for shown in progress.every(session)],
        "segments": segments(session),
        "budgets": [b.as_dict() for b in budgets.standings(session)],
        "ad_spend": ad_spend(session),
        "notes": {"channels": kpis.ENGAGEMENT_NOTE},
    }


def ad_spend(session: Session) -> list[dict[str, Any]]:
    return [status.as_dict() for status in spend.statuses(session)]


def segments(session: Session) -> list[dict[str, Any]]:
    return [row.as_dict() for row in directory.summary(session, catalog.current(session))]


@router.get("/queues")
def get_queues(session: DbSession) -> dict[str, Any]:
    return queues.snapshot(session).as_dict()


@router.get("/budgets")
def get_budgets(session: DbSession) -> list[dict[str, Any]]:
    """Spend against each channel's and each journey's budget in the current period."""
    return [b.as_dict() for b in budgets.standings(session)]


@router.get("/dead-letters")
def get_dead_letters(session: DbSession, limit: Limit = 50) -> list[dict[str, Any]]:
    return [d.as_dict() for d in dead_letters.listing(session, limit)]


@router.post("/dead-letters/{delivery_id}/replay")
def replay(session: DbSession, delivery_id: DeliveryId) -> dict[str, Any]:
    done = dead_letters.replay(session, delivery_id)
    return {"delivery_id": done.delivery_id, "replayed": done.replayed, "status": done.status}


@router.get("/deliveries/{delivery_id}")
def get_delivery(session: DbSession, delivery_id: DeliveryId) -> dict[str, Any]:
    return story.tell(session, delivery_id).as_dict()


@router.get("/journeys")
def get_journeys(session: DbSession) -> list[dict[str, Any]]:
    return kpis.as_dicts(kpis.journeys(session))


@router.get("/channels")
def get_channels(session: DbSession) -> list[dict[str, Any]]:
    return kpis.as_dicts(kpis.channels(session))


@router.get("/ad-spend")
def get_ad_spend(session: DbSession) -> list[dict[str, Any]]:
    """Each configured ad set: up to which day its spend is read, and why not when stale."""
    return ad_spend(session)


@router.get("/segments")
def get_segments(session: DbSession) -> list[dict[str, Any]]:
    return segments(session)


@router.get("/experiments")
def get_experiments(
    session: DbSession, min_per_arm: MinPerArm = experiments.MIN_PER_ARM
) -> list[dict[str, Any]]:
    return report.as_dicts(report.results(session, None, min_per_arm))


@router.get("/experiments/{journey_id}")
def get_experiment(
    session: DbSession, journey_id: JourneyId, min_per_arm: MinPerArm = experiments.MIN_PER_ARM
) -> dict[str, Any]:
    try:
        [found] = report.as_dicts(report.results(session, journey_id, min_per_arm))
    except UnknownExperiment as exc:
        raise NotFound(str(exc)) from None
    return found


@router.get("/broadcasts")
def get_broadcasts(session: DbSession) -> list[dict[str, Any]]:
    return [shown.as_dict() for shown in progress.every(session)]


@router.get("/broadcasts/{broadcast_id}")
def get_broadcast(session: DbSession, broadcast_id: BroadcastId) -> dict[str, Any]:
    shown = progress.one(session, broadcast_id)
    if shown is None:
        raise NotFound(f"broadcast {broadcast_id!r} was never started")
    return shown.as_dict()


@router.get("/summary")
def get_summary(session: DbSession, limit: Limit = 50) -> dict[str, Any]:
    return summary(session, limit)


@metrics_router.get("/metrics")
def get_metrics() -> Response:
    # No request transaction: a scrape reads the database itself, and reports it down
    # (carillon_database_up 0) rather than failing.
    return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)
