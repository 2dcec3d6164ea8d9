"""Which segment files the system runs.

Like journeys: the processes that read the directory (`serve`, `api`, `scheduler`, `carillon
segments reload`) record each changed file as a new version in `segment_versions`; workers
only read the table, so a reload reaches every worker without a restart. A file with a problem
keeps its last good version. Parsed definitions are cached per process by the set of current
version ids: a version's text never changes.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import once_per_session, session_scope
from app.segments.definition import Definitions, SegmentDefinition
from app.segments.loader import load_path, parse_segment
from app.segments.models import SegmentVersion
from app.yamlfiles import Issue
from app.yamlfiles.versions import sync_versions

log = logging.getLogger(__name__)

_parsed: dict[int, SegmentDefinition] = {}
_together: dict[tuple[int, ...], Definitions] = {}
_lock = threading.Lock()
_CURRENT = "carillon.current_segments"  # session.info key


def forget_parsed() -> None:
    """Drop the caches: needed only when the table itself is emptied (tests), since ids may
    then be reused."""
    with _lock:
        _parsed.clear()
        _together.clear()


def current(session: Session) -> Definitions:
    """Every current segment file, compiled: one small query per session (a routing batch asks
    for every event it routes; a file that changes meanwhile is for the next batch), then the
    cache."""
    return once_per_session(session, _CURRENT, _current)


def _current(session: Session) -> Definitions:
    rows = session.execute(
        select(SegmentVersion.id, SegmentVersion.source, SegmentVersion.file)
        .where(SegmentVersion.is_current)
        .order_by(SegmentVersion.id)
    ).all()
    key = tuple(row.id for row in rows)
    with _lock:
        found = _together.get(key)
    if found is not None:
        return found
    files = []
    for row in rows:
        definition = _parsed.get(row.id)
        if definition is None:
            definition = parse_segment(row.source, row.file)
            with _lock:
                _parsed[row.id] = definition
        files.append(definition)
    together = Definitions.of(files)
    with _lock:
        _together[key] = together
    return together


def sync(session: Session, files: list[SegmentDefinition]) -> list[SegmentVersion]:
    """Record a new version of every file whose text changed; retire vanished ones. Returns
    the versions created."""
    session.info.pop(_CURRENT, None)
    versions: list[SegmentVersion] = sync_versions(
        session, SegmentVersion.segment_id, files, lock=7402, noun="segment"
    )
    return versions


def sync_directory(path: Path) -> list[Issue]:
    """Load `path` and sync the valid files; a file with a problem keeps its last good
    version (a missing directory holds no segments)."""
    if not path.exists():
        files: list[SegmentDefinition] = []
        issues: list[Issue] = []
    else:
        files, issues = load_path(path)
    for issue in issues:
        log.error("segment file rejected: %s", issue)
    rejected = {issue.file for issue in issues}
    with session_scope() as session:
        kept = session.scalars(
            select(SegmentVersion).where(
                SegmentVersion.is_current, SegmentVersion.file.in_(rejected)
            )
        )
        known = {definition.id for definition in files}
        # A broken file must not retire the segment it used to define.
        files += [
            parse_segment(row.source, row.file) for row in kept if row.segment_id not in known
        ]
        sync(session, files)
    return issues


def versions(session: Session) -> list[SegmentVersion]:
    return list(
        session.scalars(
            select(SegmentVersion)
            .where(SegmentVersion.is_current)
            .order_by(SegmentVersion.segment_id)
        )
    )
