"""Parking a trip on a durable timer: the one place timers are created."""

from __future__ import annotations

from datetime import datetime

from app import clock
from app.journeys.models import Timer
from app.journeys.steps.context import StepContext


def park(ctx: StepContext, path: str, due_at: datetime) -> None:
    ctx.session.add(
        Timer(
            instance_id=ctx.instance.id,
            step_path=path,
            due_at=due_at,
            status="pending",
            created_at=clock.now(),
        )
    )
