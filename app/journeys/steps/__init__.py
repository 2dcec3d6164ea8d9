"""Step kinds: one module each, all with the same signature `run(ctx, step) -> Outcome | Goto`.

The runtime never branches on the kind of step itself; it looks the runner up here, so a new
step kind is one module and one line in `RUNNERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.journeys.definition import (
    BranchStep,
    ExitStep,
    SendStep,
    SplitStep,
    UpdateProfileStep,
    WaitForStep,
    WaitStep,
    WaitUntilStep,
)
from app.journeys.steps import (
    branch,
    exit_journey,
    send,
    split,
    update_profile,
    wait,
    wait_for,
    wait_until,
)
from app.journeys.steps.context import Goto, Outcome, StepContext

RUNNERS: dict[type, Callable[[StepContext, Any], Outcome | Goto]] = {
    WaitStep: wait.run,
    WaitUntilStep: wait_until.run,
    WaitForStep: wait_for.run,
    BranchStep: branch.run,
    SplitStep: split.run,
    UpdateProfileStep: update_profile.run,
    SendStep: send.run,
    ExitStep: exit_journey.run,
}

__all__ = ["RUNNERS", "Goto", "Outcome", "StepContext"]
