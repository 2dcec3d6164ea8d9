"""`carillon journeys simulate|test|list|reload` and live reload: what a marketer uses to try a
journey before it goes live and to change it while it runs."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from app.cli import app as cli
from app.db import session_scope
from app.embedded import JourneyFiles
from app.journeys import catalog
from app.journeys.language.files import parse_journey
from app.journeys.models import JourneyVersion
from app.journeys.simulate import check
from app.journeys.timeline import timeline
from app.journeys.timers import fire_due
from tests.helpers import REPO, SHIPPED, T0, at, event_count, instances, send
from tests.processes import CARILLON
from tests.providers.sendgrid import SendGridServer

CART = SHIPPED / "cart_abandonment.yaml"
ALICE = {"traits": {"first_name": "Alice"}, "email": "alice@example.com"}
CART_EVENT = {
    "event": "Cart Abandoned",
    "properties": {"total": 42.5, "cart_url": "https://shop.example/c/1"},
}


def carillon(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CARILLON, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def write_jsonl(path: Path, *lines: dict[str, Any]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def simulate(
    tmp_path: Path,
    journey: Path,
    *events: dict[str, Any],
    profile: dict[str, Any] | None = ALICE,
    env: dict[str, str] | None = None,
    extra: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    args = [
        "journeys",
        "simulate",
        str(journey),
        "--events",
        str(write_jsonl(tmp_path / "events.jsonl", *events)),
        "--start",
        T0.isoformat(),
        *extra,
    ]
    if profile is not None:
        (tmp_path / "profile.json").write_text(json.dumps(profile))
        args += ["--profile", str(tmp_path / "profile.json")]
    return carillon(*args, env=env)


def test_simulate_prints_the_timeline_of_a_cart_reminder(tmp_path: Path) -> None:
    result = simulate(tmp_path, CART, {"at": "0s", **CART_EVENT})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("2026-11-02 09:00:00  -")
    assert "entered" in lines[0] and "version 1" in lines[0]
    assert "wait" in lines[1] and "until 2026-11-02T10:00:00+00:00" in lines[1]
    send_line = next(line for line in lines if " send " in line)
    assert send_line.startswith("2026-11-02 10:00:00  1") and "(dry_run)" in send_line
    assert "subject: Alice, votre panier vous attend" in result.stdout
    assert "code PANIER10" in result.stdout
    assert "completed: reached step 1" in lines[-1]


def test_simulated_order_cancels_the_reminder(tmp_path: Path) -> None:
    result = simulate(
        tmp_path,
        CART,
        {"at": "0s", **CART_EVENT},
        {"at": "30m", "event": "Order Completed"},
        extra=("--json",),
    )
    assert result.returncode == 0, result.stderr
    kinds = [(e["at"], e["kind"], e["detail"]) for e in json.loads(result.stdout)]
    assert ("2026-11-02T09:30:00+00:00", "left", "exited: exit_when: Order Completed") in kinds
    assert not any(kind == "send" for _, kind, _ in kinds)


def test_simulation_has_no_side_effects_even_with_real_settings(tmp_path: Path) -> None:
    """Provider keys and the production database in the environment are ignored."""
    with SendGridServer() as sendgrid:
        env = {
            "SENDGRID_API_KEY": sendgrid.api_key,
            "CARILLON_SENDGRID_BASE_URL": sendgrid.base_url,
        }
        result = simulate(tmp_path, CART, {"at": "0s", **CART_EVENT}, env=env)
        assert result.returncode == 0, result.stderr
        assert "(dry_run)" in result.stdout
        assert sendgrid.requests == []
    assert event_count() == 0  # the database this suite runs on was not touched


def test_live_runtime_and_simulator_tell_the_same_story(
    tmp_path: Path, manual_clock, pipeline
) -> None:
    """Same journey, same person, same events: the simulator's timeline is the live one."""
    catalog.sync_directory(SHIPPED)
    identify = {
        "type": "identify",
        "userId": "alice",
        "timestamp": at(0),
        "traits": {**ALICE["traits"], "email": ALICE["email"]},
    }
    send(pipeline, identify, {"type": "track", "userId": "alice", "timestamp": at(0), **CART_EVENT})
    manual_clock.advance(timedelta(hours=1))
    fire_due(100)
    pipeline.drain()
    with session_scope() as session:
        live = [entry.as_json() for entry in timeline(session, "cart-abandonment")]

    result = simulate(tmp_path, CART, {"at": "0s", **CART_EVENT}, extra=("--json",))
    assert result.returncode == 0, result.stderr
    simulated = json.loads(result.stdout)
    assert [e["kind"] for e in live] == ["entered", "wait", "resumed", "send", "left"]
    assert simulated == live


def test_simulate_refuses_bad_input_with_the_place_of_the_error(tmp_path: Path) -> None:
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"at": "0s", "event": "Cart Abandoned"}\n{not json}\n')
    result = carillon("journeys", "simulate", str(CART), "--events", str(bad_json))
    assert result.returncode == 2
    assert f"{bad_json}:2: not JSON" in result.stderr

    result = simulate(tmp_path, CART, {"at": "soon", **CART_EVENT})
    assert result.returncode == 2
    assert "events.jsonl:1: 'soon' is not a duration" in result.stderr

    result = simulate(tmp_path, CART, {"at": "0s", "properties": {}})
    assert result.returncode == 2 and "needs an `event` name" in result.stderr

    broken = tmp_path / "broken.yaml"
    broken.write_text(CART.read_text().replace("wait: 1h", "wait: 1 hour"))
    result = simulate(tmp_path, broken, {"at": "0s", **CART_EVENT})
    assert result.returncode == 1
    assert f"{broken}:" in result.stderr and "did you mean '1h'" in result.stderr

    (tmp_path / "profile.json").write_text("[1, 2]")
    result = carillon(
        "journeys",
        "simulate",
        str(CART),
        "--events",
        str(write_jsonl(tmp_path / "ok.jsonl", CART_EVENT)),
        "--profile",
        str(tmp_path / "profile.json"),
    )
    assert result.returncode == 2 and "the profile must be a JSON object" in result.stderr


def _journey_dir(tmp_path: Path, text: str) -> Path:
    directory = tmp_path / "journeys"
    directory.mkdir(exist_ok=True)
    (directory / "cart.yaml").write_text(text)
    return directory


def test_reload_makes_a_new_version_and_running_trips_keep_theirs(
    tmp_path: Path, settings_env, pipeline
) -> None:
    directory = _journey_dir(tmp_path, CART.read_text())
    settings_env.setenv("CARILLON_JOURNEYS_DIR", str(directory))
    runner = CliRunner()
    assert runner.invoke(cli, ["journeys", "reload"]).exit_code == 0
    send(
        pipeline,
        {
            "type": "identify",
            "userId": "alice",
            "timestamp": at(0),
            "traits": {"email": "alice@example.com"},
        },
        {"type": "track", "userId": "alice", "timestamp": at(0), **CART_EVENT},
    )

    (directory / "cart.yaml").write_text(CART.read_text().replace("wait: 1h", "wait: 2h"))
    result = runner.invoke(cli, ["journeys", "reload"])
    assert result.exit_code == 0, result.output
    assert "cart-abandonment" in result.output and "      2 live" in result.output
    [trip] = instances()
    with session_scope() as session:
        versions = {v.id: v.version for v in session.query(JourneyVersion)}
    assert versions[trip.journey_version_id] == 1  # the running trip stays on version 1

    listing = runner.invoke(cli, ["journeys", "list", "--versions"])
    assert listing.exit_code == 0
    rows = [line.split()[:4] for line in listing.output.splitlines()[1:]]
    assert rows == [
        ["cart-abandonment", "1", "previous", "1"],
        ["cart-abandonment", "2", "live", "0"],
    ]


def test_a_broken_edit_keeps_the_last_good_version_and_says_why(
    tmp_path: Path, settings_env
) -> None:
    directory = _journey_dir(tmp_path, CART.read_text())
    settings_env.setenv("CARILLON_JOURNEYS_DIR", str(directory))
    runner = CliRunner()
    assert runner.invoke(cli, ["journeys", "reload"]).exit_code == 0
    (directory / "cart.yaml").write_text(CART.read_text().replace("wait: 1h", "wait: 1 hour"))
    result = runner.invoke(cli, ["journeys", "reload"])
    assert result.exit_code == 1
    assert "did you mean '1h'" in result.output
    listing = runner.invoke(cli, ["journeys", "list"])
    assert "cart-abandonment" in listing.output and " 1 live" in listing.output
    assert "rejected" in listing.output and "cart.yaml:" in listing.output


def test_serve_reloads_a_journey_file_when_it_changes(tmp_path: Path) -> None:
    directory = _journey_dir(tmp_path, CART.read_text())
    catalog.sync_directory(directory)
    watch = JourneyFiles(directory)
    watch.check()  # nothing changed: no new version
    (directory / "cart.yaml").write_text(CART.read_text().replace("7d", "14d"))
    watch.check()
    with session_scope() as session:
        current = catalog.versions(session, current_only=True)
    assert [(row.journey_id, row.version, row.state) for row in current] == [
        ("cart-abandonment", 2, "live")
    ]


def test_enabled_false_pauses_entry(tmp_path: Path, pipeline) -> None:
    directory = _journey_dir(
        tmp_path,
        CART.read_text().replace(
            "name: Abandoned cart reminder", "name: Abandoned cart reminder\nenabled: false"
        ),
    )
    catalog.sync_directory(directory)
    send(pipeline, {"type": "track", "userId": "alice", "timestamp": at(0), **CART_EVENT})
    assert instances() == []
    with session_scope() as session:
        assert catalog.versions(session, current_only=True)[0].state == "paused"


def test_a_journey_test_sees_quiet_hours_move_the_sms_to_the_morning(
    settings_env: pytest.MonkeyPatch,
) -> None:
    """The simulator makes deferred deliveries at their due time, as the live worker does: a
    journey test shows when the person really gets the SMS, not when it was planned."""
    settings_env.setenv("CARILLON_QUIET_HOURS", "sms=21:00-08:00")
    journey = parse_journey(
        """
id: late-welcome
name: Welcome SMS, even late in the evening
trigger: {event: Newsletter Subscribed}
steps:
  - send: {channel: sms, text: "Bienvenue !"}
tests:
  - name: at 22:00 in Paris the SMS waits for 08:00
    profile: {traits: {sms_opt_in: true, timezone: Europe/Paris}, phone: "+33612345678"}
    events:
      - {at: 0s, event: Product Viewed}
      - {at: 12h, event: Newsletter Subscribed}
    expect:
      - {at: 22h, channel: sms, contains: {text: Bienvenue}}
""",
        "late.yaml",
    )
    # TEST_START is 09:00 UTC (10:00 in Paris): +12h is 22:00 in Paris, 08:00 is +22h.
    [scenario] = journey.tests
    assert check(journey, scenario) == []
    early = replace(scenario, expect=(replace(scenario.expect[0], at=timedelta(hours=12)),))
    missed, unexpected = check(journey, early)
    assert missed.startswith("expected sms at 12h") and "sms at 22h" in missed
    assert unexpected.startswith("unexpected sms at 22h")
