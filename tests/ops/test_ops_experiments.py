"""GET /ops/experiments: the A/B test results behind the admin token, 404 for a journey that is
not loaded or has no split, 422 for a bad minimum."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app import scheduler
from app.clock import ManualClock
from app.journeys import catalog
from tests.helpers import (
    AB_TEST,
    AUTO_WINNER,
    REPO,
    bearer,
    journeys,
    route,
    run_ab_test,
    track,
    users_by_arm,
)

PEOPLE = [f"p{i:02}" for i in range(20)]


@pytest.fixture
def ab_test(tmp_path: Path, manual_clock: ManualClock) -> Path:
    shutil.copy(REPO / "journeys" / "cart_abandonment.yaml", tmp_path)  # a journey without split
    run_ab_test(tmp_path, manual_clock, PEOPLE, PEOPLE[:5])
    return tmp_path


def test_results_per_split_and_per_journey(client: TestClient, admin: str, ab_test: Path) -> None:
    everything = client.get("/ops/experiments", headers=bearer())
    assert everything.status_code == 200
    [found] = everything.json()
    assert (found["journey_id"], found["version"], found["goal"]) == (
        "cart-winback",
        1,
        "Order Completed",
    )
    arms = found["experiment"]["arms"]
    assert [a["name"] for a in arms] == ["A", "B", "holdout"]
    assert sum(a["recipients"] for a in arms) == 20 and sum(a["conversions"] for a in arms) == 5
    assert found["experiment"]["min_per_arm"] == 500

    one = client.get("/ops/experiments/cart-winback?min_per_arm=2", headers=bearer())
    assert one.status_code == 200
    experiment = one.json()["experiment"]
    assert experiment["min_per_arm"] == 2
    assert [(a["recipients"], a["conversions"]) for a in experiment["arms"]] == [
        (a["recipients"], a["conversions"]) for a in arms
    ]

    summary = client.get("/ops/summary", headers=bearer()).json()
    assert summary["experiments"] == everything.json()


@pytest.mark.parametrize(
    ("path", "status", "detail"),
    [
        ("/ops/experiments/nope", 404, "no journey 'nope' is loaded"),
        ("/ops/experiments/cart-abandonment", 404, "journey 'cart-abandonment' has no split"),
        ("/ops/experiments?min_per_arm=0", 422, "greater than or equal to 1"),
        ("/ops/experiments/cart-winback?min_per_arm=ten", 422, "valid integer"),
        (f"/ops/experiments/{'x' * 101}", 422, "at most 100 characters"),
    ],
)
def test_bad_requests_are_refused_with_a_reason(
    client: TestClient, admin: str, tmp_path: Path, path: str, status: int, detail: str
) -> None:
    shutil.copy(REPO / "journeys" / "cart_abandonment.yaml", tmp_path)
    shutil.copy(AB_TEST, tmp_path)
    catalog.sync_directory(tmp_path)
    answer = client.get(path, headers=bearer())
    assert answer.status_code == status
    assert detail in str(answer.json()["detail"])


def test_the_admin_token_is_required(client: TestClient, admin: str) -> None:
    assert client.get("/ops/experiments").status_code == 401
    assert client.get("/ops/experiments", headers=bearer("wrong")).status_code == 401


def test_a_declared_winner_is_shown_with_its_time_and_p_value(
    client: TestClient, admin: str, tmp_path: Path, manual_clock: ManualClock
) -> None:
    journeys(tmp_path, AUTO_WINNER.replace("MIN", "20"))
    route(*(track(f"u{i:03}", "Cart Abandoned") for i in range(80)))
    later = "2026-11-02T09:30:00Z"
    route(*(track(user, "Order Completed", timestamp=later) for user in users_by_arm()["B"]))
    scheduler.decide_winners()

    [found] = client.get("/ops/experiments", headers=bearer()).json()
    assert (found["declared"]["arm"], found["declared"]["metric"]) == ("B", "conversion")
    assert found["declared"]["p_value"] < 0.05
    assert found["experiment"]["verdict"].startswith("winner: B since 2026-11-02 09:00 UTC")
    panels = client.get("/ops/panels", headers=bearer())
    assert panels.status_code == 200
    assert "new entrants all go to B" in panels.text
