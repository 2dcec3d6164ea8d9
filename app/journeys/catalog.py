"""Which journey versions exist and which one new people enter.

Journey files are synced into `journey_versions` by the processes that read the directory
(`serve`, `api`, `scheduler`); workers only read the table, so a reload reaches every worker
without a restart. Parsed versions are cached per process by version id: a version's text
never changes.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db import once_per_session, session_scope
from app.journeys.definition import Journey
from app.journeys.language.files import Issue, load_path, parse_journey
from app.journeys.models import ACTIVE, JourneyInstance, JourneyVersion
from app.segments.loader import channel_lists
from app.settings import get_settings
from app.yamlfiles.versions import sync_versions

log = logging.getLogger(__name__)

_parsed: dict[int, Journey] = {}
_CURRENT = "carillon.current_journeys"  # session.info keys
_TRIP_VERSIONS = "carillon.trip_versions"


def forget_parsed() -> None:
    """Drop the parsed-version cache: needed only when the table itself is emptied (between
    simulated scenarios and tests), since ids may then be reused."""
    _parsed.clear()


def journey_of_version(session: Session, version_id: int) -> Journey:
    journey = _parsed.get(version_id)
    if journey is None:
        row = session.get(JourneyVersion, version_id)
        if row is None:
            raise LookupError(f"journey version {version_id} does not exist")
        journey = _parsed[version_id] = parse_journey(row.source, row.file)
    return journey


def journey_of_instance(session: Session, instance_id: int) -> Journey:
    """The journey version a trip started on: what its messages obey at send time (kind,
    priority, caps), read from the version rather than copied onto every delivery row."""
    versions: dict[int, int] = session.info.setdefault(_TRIP_VERSIONS, {})
    if instance_id not in versions:
        read_trip_versions(session, [instance_id])
    if instance_id not in versions:
        raise LookupError(f"journey instance {instance_id} does not exist")
    return journey_of_version(session, versions[instance_id])


def read_trip_versions(session: Session, instance_ids: Collection[int]) -> None:
    """Which version each of these trips runs, in one query, kept for the session (a trip never
    changes version): a delivery batch's checks then ask `journey_of_instance` for free."""
    versions: dict[int, int] = session.info.setdefault(_TRIP_VERSIONS, {})
    wanted = [instance_id for instance_id in instance_ids if instance_id not in versions]
    if wanted:
        versions.update(
            session.execute(
                select(JourneyInstance.id, JourneyInstance.journey_version_id).where(
                    JourneyInstance.id.in_(wanted)
                )
            ).all()
        )


def current_journeys(session: Session) -> list[tuple[int, Journey]]:
    """Read once per session: a routing batch asks for every event it routes, and a
    version that becomes current meanwhile is for the next batch."""
    return once_per_session(session, _CURRENT, _current_journeys)


def _current_journeys(session: Session) -> list[tuple[int, Journey]]:
    ids = session.scalars(
        select(JourneyVersion.id).where(JourneyVersion.is_current).order_by(JourneyVersion.id)
    )
    return [(version_id, journey_of_version(session, version_id)) for version_id in ids]


@dataclass(frozen=True)
class VersionRow:
    journey_id: str
    version: int
    state: str  # live | paused (enabled: false) | previous
    live: int  # trips still running on this version
    loaded_at: datetime
    file: str


def versions(session: Session, *, current_only: bool) -> list[VersionRow]:
    live = (
        select(func.count())
        .where(
            JourneyInstance.journey_version_id == JourneyVersion.id,
            JourneyInstance.status == ACTIVE,
        )
        .scalar_subquery()
    )
    stmt = select(JourneyVersion, live).order_by(JourneyVersion.journey_id, JourneyVersion.version)
    if current_only:
        stmt = stmt.where(JourneyVersion.is_current)
    rows = []
    for version, running in session.execute(stmt).all():
        if not version.is_current:
            state = "previous"
        else:
            state = "live" if journey_of_version(session, version.id).enabled else "paused"
        rows.append(
            VersionRow(
                version.journey_id, version.version, state, running, version.loaded_at, version.file
            )
        )
    return rows


def sync(session: Session, journeys: list[Journey]) -> list[JourneyVersion]:
    """Record a new version for every journey whose text changed; retire vanished journeys.

    Returns the versions created."""
    session.info.pop(_CURRENT, None)
    versions: list[JourneyVersion] = sync_versions(
        session, JourneyVersion.journey_id, journeys, lock=7401, noun="journey"
    )
    return versions


def load_files(path: Path) -> tuple[list[Journey], list[Issue]]:
    """The journey files at `path` (a file or a directory) as the system takes them: each
    `channel: preferred` send checked against the channels the segments directory lists."""
    return load_path(path, channel_lists(get_settings().segments_dir))


def sync_directory(path: Path) -> list[Issue]:
    """Load `path` and sync the valid journeys; invalid files keep their last good version."""
    journeys, issues = load_files(path)
    for issue in issues:
        log.error("journey file rejected: %s", issue)
    invalid_files = {issue.file for issue in issues}
    with session_scope() as session:
        kept = [
            row.journey_id
            for row in session.scalars(
                select(JourneyVersion).where(
                    JourneyVersion.is_current, JourneyVersion.file.in_(invalid_files)
                )
            )
        ]
        good = [j for j in journeys if j.file not in invalid_files]
        known = {j.id for j in good}
        # A broken file must not retire the journey it used to define.
        good += [
            journey_of_version(session, vid)
            for vid, j in current_journeys(session)
            if j.id in kept and j.id not in known
        ]
        sync(session, good)
    return issues
