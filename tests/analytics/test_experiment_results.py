"""Experiment results read from what the runtime stored: the documented A/B test run for real
(events routed through the journey, its timers fired), then read back by the query layer and
by `carillon report experiments` in each format; unknown journeys and formats refused."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from app.analytics.repository import UnknownExperiment, split_counts
from app.cli import app
from app.clock import ManualClock
from app.db import session_scope
from app.journeys import catalog
from app.journeys.models import JourneyInstance
from tests.helpers import AB_TEST, REPO, run_ab_test

PEOPLE = [f"p{i:02}" for i in range(24)]
BUYERS = PEOPLE[:8]


@pytest.fixture
def ab_test(tmp_path: Path, manual_clock: ManualClock) -> Path:
    run_ab_test(tmp_path, manual_clock, PEOPLE, BUYERS)
    return tmp_path


def stored() -> dict[str, tuple[int, int]]:
    """Trips and conversions per arm, counted row by row."""
    with session_scope() as session:
        trips = session.scalars(select(JourneyInstance).where(JourneyInstance.arm.is_not(None)))
        counts: dict[str, tuple[int, int]] = {}
        for trip in trips:
            n, converted = counts.get(trip.arm or "", (0, 0))
            counts[trip.arm or ""] = (n + 1, converted + (trip.converted_at is not None))
        return counts


def test_counts_per_arm_are_the_trips_and_their_goals(ab_test: Path) -> None:
    with session_scope() as session:
        [split] = split_counts(session)
    assert (split.journey_id, split.version, split.step, split.goal) == (
        "cart-winback",
        1,
        "1",
        "Order Completed",
    )
    assert [(a.name, a.weight, a.holdout) for a in split.arms] == [
        ("A", 45, False),
        ("B", 45, False),
        ("holdout", 10, True),
    ]
    by_arm = stored()
    assert {a.name: (a.recipients, a.conversions) for a in split.arms if a.recipients} == by_arm
    # Every order is 30 EUR (the goal's value: event.properties.total).
    assert split.currency == "EUR"
    assert [a.revenue for a in split.arms] == [30.0 * a.conversions for a in split.arms]
    assert sum(a.recipients for a in split.arms) == len(PEOPLE)
    assert sum(a.conversions for a in split.arms) == len(BUYERS)


def test_a_new_version_of_the_file_starts_a_new_experiment(ab_test: Path) -> None:
    edited = (ab_test / AB_TEST.name).read_text().replace("Votre panier", "Votre panier !")
    (ab_test / AB_TEST.name).write_text(edited)
    catalog.sync_directory(ab_test)
    with session_scope() as session:
        [split] = split_counts(session)
    assert split.version == 2
    assert [a.recipients for a in split.arms] == [0, 0, 0]  # version 1's people stay there


def test_report_in_each_format(ab_test: Path) -> None:
    runner = CliRunner()
    table = runner.invoke(app, ["report", "experiments"])
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0] == (
        "Cart win-back with an A/B test (cart-winback v1, split at step 1, goal: Order Completed)"
    )
    assert lines[1].split()[:2] == ["ARM", "WEIGHT"]
    assert "REVENUE" in lines[1] and " EUR" in lines[2]
    assert [line.split()[0] for line in lines[2:5]] == ["A", "B", "holdout"]
    assert "(control)" in lines[4]
    # Arms are drawn by a hash of a random profile id: with 24 people an arm may get nobody.
    counts = stored()
    smallest = min(counts.get(arm, (0, 0))[0] for arm in ("A", "B", "holdout"))
    assert lines[-1].startswith(
        f"=> too early to call: every arm needs at least 500 people (the smallest has {smallest})"
    )

    as_json = runner.invoke(app, ["report", "experiments", "cart-winback", "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    [found] = json.loads(as_json.stdout)
    experiment = found["experiment"]
    assert experiment["control"] == "holdout" and experiment["test"] == "chi-squared"
    arms = {a["name"]: a for a in experiment["arms"]}
    for name, (people, converted) in stored().items():
        assert (arms[name]["recipients"], arms[name]["conversions"]) == (people, converted)
        assert arms[name]["rate"] == pytest.approx(converted / people)
        low, high = arms[name]["rate_interval"]["low"], arms[name]["rate_interval"]["high"]
        assert low <= converted / people <= high

    as_csv = runner.invoke(app, ["report", "experiments", "--format", "csv", "--min-per-arm", "3"])
    assert as_csv.exit_code == 0, as_csv.output
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [row["arm"] for row in rows] == ["A", "B", "holdout"]
    assert {row["journey_id"] for row in rows} == {"cart-winback"}
    assert {row["min_per_arm"] for row in rows} == {"3"}
    assert rows[2]["control"] == "True" and rows[2]["lift"] == ""
    assert {row["currency"] for row in rows} == {"EUR"}
    assert [float(row["revenue"]) for row in rows] == [30.0 * int(r["conversions"]) for r in rows]
    # Lift compares with the control; an arm nobody was drawn into has no rate to compare.
    for row in rows[:2]:
        if int(row["recipients"]) and int(rows[2]["recipients"]):
            expected = float(row["rate"]) - float(rows[2]["rate"])
            assert float(row["lift"]) == pytest.approx(expected, abs=1e-5)
        else:
            assert row["lift"] == ""


def test_a_journey_without_a_goal_says_so(tmp_path: Path, manual_clock: ManualClock) -> None:
    text = AB_TEST.read_text()
    text = text[: text.index("goal:")] + text[text.index("re_entry:") :]
    (tmp_path / "no_goal.yaml").write_text(text)
    catalog.sync_directory(tmp_path)
    answer = CliRunner().invoke(app, ["report", "experiments", "--format", "json"])
    assert answer.exit_code == 0, answer.output
    [found] = json.loads(answer.stdout)
    assert found["goal"] is None
    assert found["experiment"]["verdict"].startswith("no goal: add `goal:` to the journey")


def test_no_split_loaded_is_said_in_words(tmp_path: Path) -> None:
    shutil.copy(REPO / "journeys" / "cart_abandonment.yaml", tmp_path)
    catalog.sync_directory(tmp_path)
    answer = CliRunner().invoke(app, ["report", "experiments"])
    assert answer.exit_code == 0
    assert answer.output.strip() == "No journey with a split is loaded."
    as_json = CliRunner().invoke(app, ["report", "experiments", "--format", "json"])
    assert json.loads(as_json.stdout) == []


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["nope"], "error: no journey 'nope' is loaded (see `carillon journeys list`)"),
        (["cart-abandonment"], "error: journey 'cart-abandonment' has no split: there is nothing"),
        (["--format", "xml"], "Invalid value for '--format'"),
        (["--min-per-arm", "0"], "Invalid value for '--min-per-arm'"),
    ],
)
def test_bad_input_exits_2_and_says_why(tmp_path: Path, args: list[str], error: str) -> None:
    for path in (AB_TEST, REPO / "journeys" / "cart_abandonment.yaml"):
        shutil.copy(path, tmp_path)
    catalog.sync_directory(tmp_path)
    answer = CliRunner().invoke(app, ["report", "experiments", *args])
    assert answer.exit_code == 2
    assert error in " ".join(answer.output.replace("│", " ").split())


def test_the_query_layer_refuses_an_unknown_journey(tmp_path: Path) -> None:
    shutil.copy(AB_TEST, tmp_path)
    catalog.sync_directory(tmp_path)
    with session_scope() as session, pytest.raises(UnknownExperiment, match="no journey 'x'"):
        split_counts(session, "x")
