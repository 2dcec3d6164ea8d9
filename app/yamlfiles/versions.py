"""The files' versions in the database: journeys and segments are both YAML files whose every
loaded text is kept as a numbered version, the current one read by every worker, so a reload
reaches them all without a restart and a trip or a membership pins the version it began on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Boolean, Integer, String, Text, select, text, update
from sqlalchemy.orm import InstrumentedAttribute, Mapped, Session, mapped_column

from app import clock
from app.db import BigId, UTCDateTime, is_postgres

log = logging.getLogger(__name__)


class FileVersion:
    """The columns of a table of versions (journey_versions, segment_versions), beside the
    file's own id column and the table's name and unique (id, version) constraint."""

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    version: Mapped[int] = mapped_column(Integer)
    checksum: Mapped[str] = mapped_column(String(64))
    file: Mapped[str] = mapped_column(String(500))
    source: Mapped[str] = mapped_column(Text)
    loaded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The version new trips start on and workers evaluate; False for older versions and for
    # files that are gone.
    is_current: Mapped[bool] = mapped_column(Boolean, default=False)


class LoadedFile(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def checksum(self) -> str: ...
    @property
    def file(self) -> str: ...
    @property
    def source(self) -> str: ...


def sync_versions(
    session: Session,
    key: InstrumentedAttribute[str],
    loaded: Sequence[LoadedFile],
    *,
    lock: int,
    noun: str,
) -> list[Any]:
    """Record a new version of every file whose text changed (the table is `key`'s, e.g.
    `JourneyVersion.journey_id`), make the newest one current, retire the ids no file defines
    any more. Returns the versions created."""
    table: Any = key.class_
    if is_postgres(session):
        # Several processes may start at once; one syncs at a time.
        session.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": lock})
    created = []
    for each in loaded:
        latest = session.scalars(
            select(table).where(key == each.id).order_by(table.version.desc()).limit(1)
        ).first()
        if latest is not None and latest.checksum == each.checksum:
            latest.is_current = True
            continue
        session.execute(update(table).where(key == each.id).values(is_current=False))
        version = table(
            **{key.key: each.id},
            version=(latest.version + 1) if latest else 1,
            checksum=each.checksum,
            file=each.file,
            source=each.source,
            loaded_at=clock.now(),
            is_current=True,
        )
        session.add(version)
        created.append(version)
    present = [each.id for each in loaded]
    session.execute(
        update(table).where(table.is_current, key.not_in(present)).values(is_current=False)
    )
    session.flush()
    for version in created:
        log.info(
            "%s %s: version %d loaded from %s",
            noun,
            getattr(version, key.key),
            version.version,
            version.file,
        )
    return created
