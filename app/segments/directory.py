"""What `carillon segments list|show|members` and the ops pages (`GET /ops/segments`, the
dashboard) tell about segments: the current definitions with their member counts and their
file's backfill progress, one segment's rule, its members. One reading for every place, so the
command line and the dashboard never disagree."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.profiles.models import USER_ID, Identity
from app.segments.backfill import Progress, progress
from app.segments.definition import Definitions
from app.segments.models import Membership


@dataclass(frozen=True)
class SegmentRow:
    id: str
    kind: str  # segment | stage
    members: int
    file: str
    backfill: Progress | None  # None: the file is not in the database (yet)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "members": self.members,
            "file": self.file,
            "backfill": self.backfill.as_dict() if self.backfill is not None else None,
        }


@dataclass(frozen=True)
class Member:
    profile_id: str
    user_id: str | None
    entered_at: datetime


def _counts(session: Session) -> dict[str, int]:
    stmt = select(Membership.segment_id, func.count()).group_by(Membership.segment_id)
    return {segment_id: count for segment_id, count in session.execute(stmt).all()}


def summary(session: Session, definitions: Definitions) -> list[SegmentRow]:
    """Each current segment and stage with its member count and its file's backfill."""
    counts = _counts(session)
    backfills = progress(session)
    return [
        SegmentRow(
            s.id,
            "stage" if s.stage else "segment",
            counts.get(s.id, 0),
            s.file,
            backfills.get(s.file),
        )
        for s in definitions.every_segment
    ]


def describe(session: Session, definitions: Definitions, segment_id: str) -> dict[str, Any] | None:
    segment = definitions.segment(segment_id)
    if segment is None:
        return None
    definition = next(f for f in definitions.files if f.file == segment.file)
    traits = {
        t.name: {
            "aggregate": t.kind,
            "event": t.event,
            "of": ".".join(t.of) or None,
            "within": str(t.within) if t.within else None,
            "where": t.where.source if t.where else None,
        }
        for t in definition.aggregates
    }
    traits.update({t.name: {"compute": t.expression.source} for t in definition.derived})
    return {
        "id": segment.id,
        "name": segment.name,
        "kind": "stage" if segment.stage else "segment",
        "when": segment.when.source if segment.when else None,
        "channels": list(segment.channels),
        "file": segment.file,
        "traits": traits,
        "members": _counts(session).get(segment.id, 0),
    }


def members(session: Session, segment_id: str, limit: int) -> list[Member]:
    user = (
        select(Identity.value)
        .where(Identity.profile_id == Membership.profile_id, Identity.kind == USER_ID)
        .limit(1)
        .scalar_subquery()
    )
    stmt = (
        select(Membership.profile_id, user, Membership.entered_at)
        .where(Membership.segment_id == segment_id)
        .order_by(Membership.entered_at.desc(), Membership.profile_id)
        .limit(limit)
    )
    return [Member(p, u, e) for p, u, e in session.execute(stmt).all()]
