"""The broadcast files on disk, checked against the running system: the segments it runs
(not merely those on disk: a segment file not reloaded yet has no members), the clock, the
channels' rate limits and the broadcasts already started."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import clock
from app.broadcasts.loader import BroadcastDefinition, Known, find, load_path
from app.broadcasts.models import Broadcast
from app.journeys import catalog as journeys
from app.segments import catalog as segments
from app.settings import get_settings, parse_rate_limits
from app.yamlfiles import Issue


def known(session: Session) -> Known:
    return Known(
        segments=frozenset(s.id for s in segments.current(session).every_segment),
        journeys=frozenset(j.id for _, j in journeys.current_journeys(session) if j.enabled),
        now=clock.now(),
        limits=parse_rate_limits(get_settings().rate_limits),
        started=frozenset(session.scalars(select(Broadcast.id))),
    )


def directory() -> Path:
    return get_settings().broadcasts_dir


def files(
    session: Session, path: Path | None = None
) -> tuple[list[BroadcastDefinition], list[Issue]]:
    """Every file of the directory (or `path`), and every problem."""
    target = path or directory()
    if not target.exists():
        return [], []
    return load_path(target, known(session))


def definition(
    session: Session, broadcast_id: str
) -> tuple[BroadcastDefinition | None, list[Issue]]:
    """The file of `broadcast_id`, checked, or None with its problems (none: no such file)."""
    if not directory().exists():
        return None, []
    return find(directory(), broadcast_id, known(session))
