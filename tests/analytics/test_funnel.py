"""A journey's funnel (`carillon report journeys`, the dashboard's funnel charts): trips that
entered, were sent a message, converted, per journey and per arm; dry runs apart; delivered and
clicked unknown until a webhook reports. The A/B test's e-mails go to SendGrid's stand-in."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from typer.testing import CliRunner

from app.analytics import funnel
from app.cli import app
from app.clock import ManualClock
from app.db import session_scope
from app.journeys import catalog
from tests.helpers import SHIPPED, Providers, instances, run_ab_test

PEOPLE = [f"p{i:02}" for i in range(30)]
BUYERS = PEOPLE[:6]


def funnels() -> dict[tuple[str, str], funnel.Funnel]:
    with session_scope() as session:
        return {(f.journey, f.arm): f for f in funnel.journeys(session)}


def arms_of_people() -> dict[str, int]:
    found: dict[str, int] = {}
    for trip in instances():
        assert trip.arm is not None
        found[trip.arm] = found.get(trip.arm, 0) + 1
    return found


def test_the_funnel_counts_trips_per_stage_and_per_arm(
    providers: Providers, manual_clock: ManualClock, tmp_path: Path
) -> None:
    run_ab_test(tmp_path, manual_clock, PEOPLE, BUYERS, send=True)
    sizes = arms_of_people()
    rows = funnels()
    whole = rows[("cart-winback", funnel.ALL_ARMS)]
    messaged = sizes.get("A", 0) + sizes.get("B", 0)  # the holdout is sent nothing
    assert (whole.name, whole.entered, whole.reached, whole.dry_run, whole.converted) == (
        "Cart win-back with an A/B test",
        30,
        messaged,
        0,
        6,
    )
    assert (whole.delivered, whole.clicked) == (None, None)  # no webhook has reported yet
    assert len(providers.sendgrid.requests) == messaged
    for arm, size in sizes.items():
        row = rows[("cart-winback", arm)]
        assert row.entered == size
        assert row.reached == (0 if arm == "holdout" else size)
    buyers_by_arm = sum(rows[("cart-winback", arm)].converted for arm in sizes)
    assert buyers_by_arm == 6
    assert list(rows)[0] == ("cart-winback", funnel.ALL_ARMS)  # the journey, then its arms


def test_a_dry_run_reaches_nobody_and_is_counted_apart(
    no_credentials: Providers, manual_clock: ManualClock, tmp_path: Path
) -> None:
    run_ab_test(tmp_path, manual_clock, PEOPLE, [], send=True)
    sizes = arms_of_people()
    whole = funnels()[("cart-winback", funnel.ALL_ARMS)]
    assert (whole.entered, whole.reached, whole.converted) == (30, 0, 0)
    assert whole.dry_run == sizes.get("A", 0) + sizes.get("B", 0)


def test_a_loaded_journey_nobody_entered_has_an_empty_funnel() -> None:
    catalog.sync_directory(SHIPPED)
    rows = funnels()
    assert rows, "the shipped journeys are loaded"
    assert {(f.arm, f.entered, f.reached, f.converted) for f in rows.values()} == {
        (funnel.ALL_ARMS, 0, 0, 0)
    }


def test_report_journeys_prints_the_funnel_beside_the_money(
    providers: Providers, manual_clock: ManualClock, tmp_path: Path
) -> None:
    run_ab_test(tmp_path, manual_clock, PEOPLE, BUYERS, send=True)
    rows_before = funnels()
    messaged = rows_before[("cart-winback", funnel.ALL_ARMS)].reached
    held_out = rows_before.get(("cart-winback", "holdout"))
    bought_after_an_email = 6 - (held_out.converted if held_out else 0)
    runner = CliRunner()
    table = runner.invoke(app, ["report", "journeys"])
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].split() == [
        "JOURNEY", "ARM", "ENTERED", "REACHED", "DRY", "RUN", "DELIVERED", "CLICKED",
        "CONVERTED", "SENT", "UNITS", "COST", "REVENUE", "ROI",
    ]  # fmt: skip
    whole = lines[1].split()
    assert whole[:9] == ["cart-winback", "(all)", "30", str(messaged), "0", "-", "-", "6"] + [
        str(messaged)
    ]
    as_csv = runner.invoke(app, ["report", "journeys", "--format", "csv"])
    assert as_csv.exit_code == 0, as_csv.output
    first = next(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert (first["journey"], first["arm"], first["entered"], first["converted"]) == (
        "cart-winback",
        "(all)",
        "30",
        "6",
    )
    assert (first["delivered"], first["clicked"], first["sent"]) == ("", "", str(messaged))
    as_json = runner.invoke(app, ["report", "journeys", "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    rows = json.loads(as_json.stdout)
    assert rows[0]["entered"] == 30 and rows[0]["delivered"] is None
    assert rows[0]["revenue"] == 30 * bought_after_an_email  # the holdout's is credited to none
    assert sum(row["entered"] for row in rows[1:]) == 30


def test_report_journeys_refuses_an_unknown_format() -> None:
    answer = CliRunner().invoke(app, ["report", "journeys", "--format", "html"])
    assert answer.exit_code == 2 and "html" in answer.output
