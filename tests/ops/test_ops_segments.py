"""Segments on `/ops`: each segment and stage with its member count and its file's backfill
progress, as `carillon segments list` prints it, in the JSON API and on the dashboard."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.cli import app
from app.clock import ManualClock
from app.segments import backfill, catalog
from tests.helpers import REPO, bearer, cart, person_at, route


def listed() -> dict[str, str]:
    """`carillon segments list`: the backfill column per segment."""
    result = CliRunner().invoke(app, ["segments", "list"])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines()[1:] if not line.startswith("rejected")]
    found = {}
    for line in rows:
        match = re.match(r"(\S+)\s+\S+\s+\d+\s+(up to date|backfill \S+)\s", line)
        assert match, line
        found[match[1]] = match[2]
    return found


def by_id(rows: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    return {str(row["id"]): row for row in rows}


def test_the_ops_api_shows_each_segment_backfill_as_the_command_line_does(
    client: TestClient, admin: str, manual_clock: ManualClock
) -> None:
    for user in ("p0", "p1", "p2", "p3", "p4"):
        route(person_at(user), cart(30, minutes=1, user=user), cart(40, minutes=2, user=user))
    assert catalog.sync_directory(REPO / "segments") == []
    assert backfill.run_batch(batch_size=2) == 2  # the first file, part way

    answer = client.get("/ops/segments", headers=bearer())
    assert answer.status_code == 200
    rows = by_id(answer.json())
    assert set(rows) == {"frequent-abandoners", "vip", "active", "at-risk", "lapsed", "new"}
    pending = rows["frequent-abandoners"]
    assert pending["kind"] == "segment" and str(pending["file"]).endswith(
        "frequent_abandoners.yaml"
    )
    assert pending["backfill"] == {
        "done": 2,
        "total": 5,
        "finished": False,
        "text": "backfill 2/5",
    }
    assert rows["new"]["kind"] == "stage"
    assert rows["new"]["backfill"] == {
        "done": 0,
        "total": 5,
        "finished": False,
        "text": "backfill 0/5",
    }
    assert {key: row["backfill"]["text"] for key, row in rows.items()} == listed()  # type: ignore[index]

    backfill.backfill_pending()
    rows = by_id(client.get("/ops/summary", headers=bearer()).json()["segments"])
    assert rows["frequent-abandoners"]["members"] == 5
    assert rows["frequent-abandoners"]["backfill"]["finished"] is True  # type: ignore[index]
    assert {key: row["backfill"]["text"] for key, row in rows.items()} == listed()  # type: ignore[index]
    assert set(listed().values()) == {"up to date"}


def test_the_dashboard_shows_the_backfill_progress(
    client: TestClient, admin: str, manual_clock: ManualClock
) -> None:
    for user in ("p0", "p1", "p2"):
        route(person_at(user))
    assert catalog.sync_directory(REPO / "segments") == []
    assert backfill.run_batch(batch_size=2) == 2

    panels = client.get("/ops/panels", headers=bearer())
    assert panels.status_code == 200
    row = re.search(r'<tr data-segment="frequent-abandoners">(.*?)</tr>', panels.text, re.S)
    assert row is not None
    assert re.search(r'data-field="backfill">backfill 2/3<', row[1])
    assert re.search(
        r'<tr data-segment="vip">.*?data-field="backfill">backfill 0/3<', panels.text, re.S
    )


def test_without_segment_files_the_api_is_empty_and_the_dashboard_says_where_they_go(
    client: TestClient, admin: str
) -> None:
    assert client.get("/ops/segments", headers=bearer()).json() == []
    panels = client.get("/ops/panels", headers=bearer())
    assert 'id="no-segments"' in panels.text and "segments/" in panels.text
