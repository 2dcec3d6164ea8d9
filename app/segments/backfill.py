"""A new or edited segment file reaches the people who were there before it: the scheduler
rebuilds their computed traits from their stored events and decides their memberships again,
a batch of profiles per transaction, in profile id order.

Each current version not yet backfilled carries its cursor (the last profile id done) and
its count of people done, so a restarted scheduler resumes where it stopped. A batch claims
its version's row with SKIP LOCKED, so two schedulers never run the same batch; it locks its
people with SKIP LOCKED as routing and the window expiry do, so it never waits on a person
being routed, and stops before the first such person (picked up by the next batch, so nobody
is passed over). A version replaced meanwhile is abandoned: its successor starts again.

A backfill starts no journey: people who were already in the segment before its file
existed did not enter it now.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, select, true
from sqlalchemy.orm import Session

from app import clock
from app.db import is_postgres, session_scope
from app.profiles.models import Profile
from app.segments import bulk, catalog
from app.segments.loader import parse_segment
from app.segments.models import SegmentVersion

log = logging.getLogger(__name__)

BATCH_SIZE = 5000  # measured: 1,230 people/s at 1,000 a batch, 2,700/s at 5,000 (BENCHMARKS.md)


@dataclass(frozen=True)
class Progress:
    """How far a segment's backfill went: `done` of `total` people, or finished."""

    done: int
    total: int
    finished: bool

    def __str__(self) -> str:
        if self.finished:
            return "up to date"
        return f"backfill {self.done:,}/{max(self.total, self.done):,}"

    def as_dict(self) -> dict[str, Any]:
        """For the ops API; `text` is what `carillon segments list` prints."""
        total = max(self.total, self.done)  # people who arrived meanwhile are done too
        return {"done": self.done, "total": total, "finished": self.finished, "text": str(self)}


def _claim(session: Session) -> SegmentVersion | None:
    """The oldest current version still to backfill that no other scheduler is working on."""
    stmt = (
        select(SegmentVersion)
        .where(SegmentVersion.is_current, SegmentVersion.backfilled_at.is_(None))
        .order_by(SegmentVersion.id)
        .limit(1)
    )
    if is_postgres(session):
        stmt = stmt.with_for_update(skip_locked=True)
    return session.scalars(stmt).first()


def _after(cursor: str | None) -> ColumnElement[bool]:
    return Profile.id > cursor if cursor is not None else true()


def _people(session: Session, after: str | None, batch_size: int) -> list[tuple[str, bool]]:
    """The next people after the cursor, locked, each with whether they are still somebody
    (not merged away nor erased); stops before the first one locked elsewhere (being
    routed), so the cursor never passes anybody by."""
    ids = list(
        session.scalars(
            select(Profile.id).where(_after(after)).order_by(Profile.id).limit(batch_size)
        )
    )
    live = Profile.merged_into.is_(None) & Profile.erased_at.is_(None)
    stmt = select(Profile.id, live).where(bulk.among(is_postgres(session), Profile.id, ids))
    if is_postgres(session):
        stmt = stmt.with_for_update(skip_locked=True)
    locked = {profile_id: bool(alive) for profile_id, alive in session.execute(stmt)}
    people = []
    for profile_id in ids:
        if profile_id not in locked:
            break
        people.append((profile_id, locked[profile_id]))
    return people


def run_batch(batch_size: int = BATCH_SIZE) -> int | None:
    """Backfill one batch of one version; how many people it did, None when it could not
    move on (nothing to do, or the next person is being routed: the next tick goes on)."""
    with session_scope() as session:
        version = _claim(session)
        if version is None:
            return None
        definition = parse_segment(version.source, version.file)
        names = [t.name for t in definition.aggregates] + [t.name for t in definition.derived]
        definitions = catalog.current(session)
        people = _people(session, version.backfill_cursor, batch_size)
        live = [profile_id for profile_id, alive in people if alive]
        if live:
            bulk.rebuild(session, definitions, live, names)  # no journey started
        if people:
            version.backfill_cursor = people[-1][0]
            version.backfill_done += len(people)
        if len(people) < batch_size and not _more(session, version.backfill_cursor):
            version.backfilled_at = clock.now()
            log.info(
                "segment %s v%d backfilled: %d people",
                version.segment_id,
                version.version,
                version.backfill_done,
            )
        elif not people:
            return None
        return len(people)


def _more(session: Session, after: str | None) -> bool:
    stmt = select(Profile.id).where(_after(after)).limit(1)
    return session.scalars(stmt).first() is not None


def backfill_pending(batch_size: int = BATCH_SIZE) -> int:
    """Every pending backfill, a batch per transaction, until none is left or the rest is
    someone else's; how many people were done."""
    done = 0
    while True:
        did = run_batch(batch_size)
        if did is None:
            return done
        done += did


def progress(session: Session) -> dict[str, Progress]:
    """Each current segment file's backfill, by file."""
    total = session.scalar(select(func.count()).select_from(Profile)) or 0
    rows = session.execute(
        select(
            SegmentVersion.file, SegmentVersion.backfill_done, SegmentVersion.backfilled_at
        ).where(SegmentVersion.is_current)
    ).all()
    return {row[0]: Progress(row[1], total, row[2] is not None) for row in rows}
