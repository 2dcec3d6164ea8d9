"""What a step sees while it runs, and what it answers."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from sqlalchemy.orm import Session

from app.journeys.definition import Journey
from app.journeys.models import JourneyInstance


class Outcome(Enum):
    NEXT = "next"  # go on to the following step now
    SUSPEND = "suspend"  # stop here; a timer or an event resumes the trip
    EXIT = "exit"  # the trip is over


@dataclass(frozen=True)
class Goto:
    """Continue at `path` now (the first step of the arm a branch or split chose)."""

    path: str


@dataclass
class StepContext:
    session: Session
    instance: JourneyInstance
    journey: Journey
    event: dict[str, Any]  # the triggering event, Segment-shaped
    profile: dict[str, Any]  # the profile as of now

    @property
    def variables(self) -> dict[str, Any]:
        """What templates and conditions may read."""
        return {"event": self.event, "profile": self.profile}
