"""A new or edited segment file reaches the people already there: the scheduler backfills
them in batches, resumable from the cursor kept on the version row, and starts no journey."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, text
from typer.testing import CliRunner

from app import clock, scheduler
from app.cli import app
from app.db import is_postgres, session_scope
from app.profiles.models import Profile
from app.segments import backfill, catalog
from app.segments.models import SegmentVersion
from tests.helpers import SHIPPED, cart, instances, journeys, order, person_at, profile_of, route

SEGMENTS = Path(__file__).resolve().parents[2] / "segments"


def history(user: str) -> list[dict[str, Any]]:
    """A mix of people: two carts (an abandoner), one cart, carts then an order, a VIP."""
    kind = int(user[-1]) % 4
    events = [person_at(user)]
    if kind in (0, 2):
        events += [cart(30, minutes=1, user=user), cart(80, minutes=2, user=user)]
    if kind == 1:
        events += [cart(20, minutes=1, user=user)]
    if kind == 2:
        events += [order(minutes=3, user=user)]
    if kind == 3:
        events += [{**order(minutes=3, user=user), "properties": {"total": 900}}]
    return events


def seen(user: str) -> tuple[Any, ...]:
    person = profile_of("user_id", user)
    return person["computed"], person["segments"], person["lifecycle_stage"]


def versions() -> list[SegmentVersion]:
    with session_scope() as session:
        return list(session.scalars(select(SegmentVersion).order_by(SegmentVersion.id)))


def listing() -> list[str]:
    result = CliRunner().invoke(app, ["segments", "list"])
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def test_a_new_segment_over_existing_people_gives_what_incremental_evaluation_gives(
    manual_clock: clock.ManualClock,
) -> None:
    before = [f"old{i}" for i in range(8)]
    for user in before:  # routed while no segment file existed
        route(*history(user))
    assert seen("old0") == ({}, [], None)

    assert catalog.sync_directory(SEGMENTS) == []
    after = [f"new{i}" for i in range(8)]
    for user in after:  # routed with the files loaded: incremental evaluation
        route(*history(user))

    assert seen("old0") != seen("new0")  # the file alone does not reach those already there
    # Everybody, the new ones included, for each of the two files.
    assert backfill.backfill_pending(batch_size=3) == 32
    for old, new in zip(before, after, strict=True):
        assert seen(old) == seen(new)
    assert seen("old0")[1] == ["frequent-abandoners"] and seen("old3")[2] == "vip"
    assert all(v.backfilled_at is not None and v.backfill_done == 16 for v in versions())
    assert backfill.backfill_pending() == 0  # done once, not again

    # The windows it rebuilt age like the incremental ones.
    manual_clock.advance(timedelta(days=31))
    scheduler.expire_windows()
    assert seen("old0") == seen("new0") and seen("old0")[1] == []


def test_a_backfill_resumes_from_its_cursor_and_shows_its_progress(
    manual_clock: clock.ManualClock,
) -> None:
    users = [f"p{i}" for i in range(5)]
    for user in users:
        route(*history(user))
    assert catalog.sync_directory(SEGMENTS) == []
    assert any(
        line.split()[:5] == ["frequent-abandoners", "segment", "0", "backfill", "0/5"]
        for line in listing()
    )

    assert backfill.run_batch(batch_size=2) == 2  # then the scheduler stops (a restart)
    first = [v for v in versions() if v.backfilled_at is None]
    assert first and first[0].backfill_done == 2 and first[0].backfill_cursor is not None
    assert any("backfill 2/5" in line for line in listing())

    scheduler.backfill_segments()  # a new process's job goes on from the cursor
    assert [v.backfill_done for v in versions()] == [5, 5]  # nobody done twice
    lines = listing()
    assert any(
        line.split()[:6] == ["frequent-abandoners", "segment", "2", "up", "to", "date"]
        for line in lines
    )
    assert seen("p0")[1] == ["frequent-abandoners"] and seen("p4")[1] == ["frequent-abandoners"]


def test_an_edited_segment_is_backfilled_again(
    manual_clock: clock.ManualClock, tmp_path: Path
) -> None:
    folder = tmp_path / "segments"
    shutil.copytree(SEGMENTS, folder)
    for user in ("e0", "e1"):
        route(*history(user))  # e0: two carts, e1: one
    assert catalog.sync_directory(folder) == []
    backfill.backfill_pending()
    assert seen("e1")[1] == []

    edited = folder / "frequent_abandoners.yaml"
    edited.write_text(
        edited.read_text(encoding="utf-8").replace("carts_30d >= 2", "carts_30d >= 1"),
        encoding="utf-8",
    )
    assert catalog.sync_directory(folder) == []
    [pending] = [v for v in versions() if v.backfilled_at is None]
    assert pending.segment_id == "frequent-abandoners" and pending.version == 2
    assert backfill.backfill_pending() == 2
    assert seen("e1")[1] == ["frequent-abandoners"]
    assert seen("e0")[0]["carts_30d"] == 2  # rebuilt, not counted twice


def test_a_backfill_starts_no_journey(manual_clock: clock.ManualClock, tmp_path: Path) -> None:
    journeys(tmp_path, (SHIPPED / "abandoner_rescue.yaml").read_text(encoding="utf-8"))
    route(*history("j0"))
    assert catalog.sync_directory(SEGMENTS) == []
    backfill.backfill_pending()
    assert seen("j0")[1] == ["frequent-abandoners"]
    assert instances() == []  # she was in it before the file existed: she did not enter now

    route(cart(40, minutes=5, user="j0"))  # still in: no trip either
    assert instances() == []


def test_a_version_being_backfilled_elsewhere_is_left_alone(
    manual_clock: clock.ManualClock,
) -> None:
    """Two schedulers never run the same batch: the version row is claimed with SKIP LOCKED
    (PostgreSQL; SQLite has one writer at a time)."""
    route(*history("s0"))
    assert catalog.sync_directory(SEGMENTS) == []
    with session_scope() as session:
        if is_postgres(session):  # SQLite has one writer: there is no other to step aside for
            session.execute(text("SELECT id FROM segment_versions FOR UPDATE"))
            assert backfill.run_batch() is None
        session.rollback()
    assert backfill.backfill_pending() == 2  # one person, each of the two files


def test_the_scheduler_runs_the_backfill() -> None:
    jobs = {job.id for job in scheduler.build(blocking=False).get_jobs()}
    assert "segments.backfill" in jobs


def test_a_person_being_routed_is_not_passed_over(manual_clock: clock.ManualClock) -> None:
    """The batch stops before a person locked by routing; the next one starts with them."""
    for user in ("r0", "r4", "r8"):  # three abandoners
        route(*history(user))
    assert catalog.sync_directory(SEGMENTS) == []
    with session_scope() as session:
        if is_postgres(session):  # SQLite has one writer: nobody is routed meanwhile
            ids = sorted(session.scalars(select(Profile.id)))
            session.execute(select(Profile.id).where(Profile.id == ids[1]).with_for_update())
            assert backfill.run_batch() == 1  # the first person only: the cursor stays before her
            assert backfill.run_batch() is None  # the next batch starts with her: wait for her
        session.rollback()
    backfill.backfill_pending()
    assert [v.backfill_done for v in versions()] == [3, 3]
    assert seen("r0")[1] == seen("r4")[1] == seen("r8")[1] == ["frequent-abandoners"]
