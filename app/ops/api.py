"""The ops JSON API, every route behind the admin token (`require_admin`).

GET  /ops/queues                          queue state (see app/ops/queues.py)
GET  /ops/dead-letters?limit=50           newest dead letters
POST /ops/dead-letters/{id}/replay        put one back in the outbox (idempotent)
GET  /ops/deliveries/{id}                 a delivery's story
GET  /ops/journeys                        people per journey step
GET  /ops/channels                        per channel results, cost, conversions
GET  /ops/experiments?min_per_arm=500      every split's A/B test results (app/analytics/)
GET  /ops/experiments/{journey_id}        one journey's (404: not loaded, or no split)
GET  /ops/summary                         all of the above at once (the dashboard polls it)
GET  /metrics                             Prometheus exposition
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from app.analytics import experiments, report
from app.analytics.repository import UnknownExperiment
from app.db import session_scope
from app.ops import dead_letters, kpis, metrics, queues, story
from app.ops.auth import require_admin

router = APIRouter(prefix="/ops", tags=["ops"], dependencies=[Depends(require_admin)])
metrics_router = APIRouter(tags=["ops"], dependencies=[Depends(require_admin)])

Limit = Annotated[int, Query(ge=1, le=500, description="How many, newest first.")]
# Delivery ids are BIGINT: a larger number is no delivery, and the database would refuse it.
DeliveryId = Annotated[int, Path(ge=1, le=2**63 - 1, description="A delivery's id.")]
JourneyId = Annotated[str, Path(min_length=1, max_length=100, description="A journey's id.")]
MinPerArm = Annotated[
    int, Query(ge=1, le=10**9, description="People every arm needs before a winner is called.")
]


def summary(limit: int = 50) -> dict[str, Any]:
    snapshot = queues.snapshot()
    with session_scope() as session:
        dead = [d.as_dict() for d in dead_letters.listing(session, limit)]
        journeys = kpis.as_dicts(kpis.journeys(session))
        channels = kpis.as_dicts(kpis.channels(session))
        tests = report.as_dicts(report.results(session))
    return {
        "queues": snapshot.as_dict(),
        "dead_letters": dead,
        "journeys": journeys,
        "channels": channels,
        "experiments": tests,
        "notes": {"channels": kpis.ENGAGEMENT_NOTE},
    }


@router.get("/queues")
async def get_queues() -> dict[str, Any]:
    snapshot = await run_in_threadpool(queues.snapshot)
    return snapshot.as_dict()


def _dead(limit: int) -> list[dict[str, Any]]:
    with session_scope() as session:
        return [d.as_dict() for d in dead_letters.listing(session, limit)]


@router.get("/dead-letters")
async def get_dead_letters(limit: Limit = 50) -> list[dict[str, Any]]:
    return await run_in_threadpool(_dead, limit)


@router.post("/dead-letters/{delivery_id}/replay")
async def replay(delivery_id: DeliveryId) -> dict[str, Any]:
    try:
        done = await run_in_threadpool(dead_letters.replay, delivery_id)
    except dead_letters.NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except dead_letters.NotReplayable as exc:
        raise HTTPException(409, str(exc)) from None
    return {"delivery_id": done.delivery_id, "replayed": done.replayed, "status": done.status}


@router.get("/deliveries/{delivery_id}")
async def get_delivery(delivery_id: DeliveryId) -> dict[str, Any]:
    try:
        told = await run_in_threadpool(story.tell, delivery_id)
    except story.NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    return told.as_dict()


def _journeys() -> list[dict[str, Any]]:
    with session_scope() as session:
        return kpis.as_dicts(kpis.journeys(session))


def _channels() -> list[dict[str, Any]]:
    with session_scope() as session:
        return kpis.as_dicts(kpis.channels(session))


@router.get("/journeys")
async def get_journeys() -> list[dict[str, Any]]:
    return await run_in_threadpool(_journeys)


@router.get("/channels")
async def get_channels() -> list[dict[str, Any]]:
    return await run_in_threadpool(_channels)


def _experiments(journey_id: str | None, min_per_arm: int) -> list[dict[str, Any]]:
    with session_scope() as session:
        return report.as_dicts(report.results(session, journey_id, min_per_arm))


@router.get("/experiments")
async def get_experiments(min_per_arm: MinPerArm = experiments.MIN_PER_ARM) -> list[dict[str, Any]]:
    return await run_in_threadpool(_experiments, None, min_per_arm)


@router.get("/experiments/{journey_id}")
async def get_experiment(
    journey_id: JourneyId, min_per_arm: MinPerArm = experiments.MIN_PER_ARM
) -> dict[str, Any]:
    try:
        [found] = await run_in_threadpool(_experiments, journey_id, min_per_arm)
    except UnknownExperiment as exc:
        raise HTTPException(404, str(exc)) from None
    return found


@router.get("/summary")
async def get_summary(limit: Limit = 50) -> dict[str, Any]:
    return await run_in_threadpool(summary, limit)


@metrics_router.get("/metrics")
async def get_metrics() -> Response:
    body = await run_in_threadpool(metrics.exposition)
    return Response(body, media_type=metrics.CONTENT_TYPE)
