"""Step kinds: one module each, all with the same signature `run(ctx, step) -> Outcome`.

The runtime never branches on the kind of step itself; it looks the runner up here, so a new
step kind is one module and one line in `RUNNERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.journeys.definition import ExitStep, SendStep, WaitStep
from app.journeys.steps import exit_journey, send, wait
from app.journeys.steps.context import Outcome, StepContext

RUNNERS: dict[type, Callable[[StepContext, Any], Outcome]] = {
    WaitStep: wait.run,
    SendStep: send.run,
    ExitStep: exit_journey.run,
}

__all__ = ["RUNNERS", "Outcome", "StepContext"]
