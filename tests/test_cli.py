"""The `carillon` command: what its help promises, what `journeys validate` and `db upgrade`
print, and the exit codes scripts and CI rely on (0 ok, 1 invalid journeys, 2 bad usage)."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from typer.testing import CliRunner

from app.cli import app
from app.db import get_engine
from app.migrate import alembic_config

REPO = Path(__file__).resolve().parent.parent
CARILLON = Path(sys.executable).parent / "carillon"
SHIPPED = ["abandoner-rescue", "cart-abandonment", "instagram-retarget", "newsletter-welcome"]

BROKEN = """\
id: broken-cart
name: Broken cart reminder
audience: everyone
trigger:
  event: Cart Abandoned
  when: event.properties.total >=
steps:
  - wait: 1 week
  - send:
      channel: sms
      text: "Hello"
"""


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def plain(output: str) -> str:
    """Help text without the boxes rich draws and with its line wrapping undone."""
    for char in "│╭╮╰╯─":
        output = output.replace(char, " ")
    return " ".join(output.split())


HELP_CASES: list[tuple[list[str], str, list[str]]] = [
    ([], "marketing journeys", ["serve", "api", "worker", "scheduler", "journeys", "db"]),
    (
        ["serve"],
        "Run everything in one process: the API, queue workers and the scheduler",
        ["--host", "--port", "Address to listen on", "Port to listen on"],
    ),
    (
        ["api"],
        "Run the HTTP API only",
        ["--host", "--port", "Address to listen on", "Port to listen on"],
    ),
    (["worker"], "Run queue workers", ["--processes", "--threads", "--queue"]),
    (["scheduler"], "fires due journey waits", []),
    (["journeys"], "Check the marketers' YAML journeys", ["validate"]),
    (["journeys", "validate"], "print every error as file:line:column", ["path"]),
    (["db"], "Manage the database schema", ["upgrade"]),
    (["db", "upgrade"], "Create or upgrade the schema", ["revision", "head"]),
]


@pytest.mark.parametrize(
    "command,says,options",
    HELP_CASES,
    ids=[" ".join(["carillon", *case[0]]) for case in HELP_CASES],
)
def test_help_says_what_each_command_does(
    runner: CliRunner, command: list[str], says: str, options: list[str]
) -> None:
    result = runner.invoke(app, [*command, "--help"], prog_name="carillon")
    assert result.exit_code == 0, result.output
    text = plain(result.output)
    assert f"Usage: carillon {' '.join(command)}".strip() in text
    assert says in text
    for option in options:
        assert option in text


@pytest.mark.parametrize(
    "command,summary",
    [
        ("serve", "Run everything in one process"),
        ("api", "Run the HTTP API only"),
        ("worker", "Run queue workers"),
        ("scheduler", "Run the scheduler"),
        ("journeys", "Check the marketers' YAML journeys"),
        ("db", "Manage the database schema"),
    ],
)
def test_top_level_help_lists_every_command(runner: CliRunner, command: str, summary: str) -> None:
    output = runner.invoke(app, ["--help"], prog_name="carillon").output
    # One row per command, its name then its summary, inside rich's box or plain click's list.
    assert re.search(rf"^[│ ]*{command} {{2,}}{re.escape(summary)}", output, re.M), output


def test_serve_and_api_help_show_their_default_address(runner: CliRunner) -> None:
    serve = plain(runner.invoke(app, ["serve", "--help"]).output)
    api = plain(runner.invoke(app, ["api", "--help"]).output)
    assert "[default: 127.0.0.1]" in serve  # the embedded default stays on this machine
    assert "[default: 0.0.0.0]" in api
    assert "[default: 8000]" in serve
    assert "[default: 8000]" in api


def test_no_arguments_shows_the_help(runner: CliRunner) -> None:
    result = runner.invoke(app, [], prog_name="carillon")
    assert "Usage: carillon" in result.output
    assert "carillon serve" in plain(result.output)


def test_the_console_script_is_installed() -> None:
    [script] = [ep for ep in entry_points(group="console_scripts") if ep.name == "carillon"]
    assert script.value == "app.cli:main"
    result = subprocess.run(
        [str(CARILLON), "--help"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    text = plain(result.stdout)
    assert "Usage: carillon" in text
    for command in ("serve", "api", "worker", "scheduler", "journeys", "db"):
        assert command in text


def test_console_script_exit_code_for_invalid_journeys(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text(BROKEN)
    result = subprocess.run(
        [str(CARILLON), "journeys", "validate", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{tmp_path / 'broken.yaml'}:3:1: unknown key 'audience'" in result.stderr


def test_validate_shipped_journeys(runner: CliRunner) -> None:
    # No argument: the journeys directory of the settings (the shipped one in the tests).
    result = runner.invoke(app, ["journeys", "validate"])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert len(lines) == len(SHIPPED)
    assert all(line.startswith("ok  ") for line in lines)
    for journey_id, line in zip(SHIPPED, lines, strict=True):
        assert f": {journey_id} (" in line


def test_validate_one_file(runner: CliRunner) -> None:
    path = REPO / "journeys" / "cart_abandonment.yaml"
    result = runner.invoke(app, ["journeys", "validate", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"ok  {path}: cart-abandonment (2 steps)\n"


def test_validate_reports_every_error_with_its_position(runner: CliRunner, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN)
    (tmp_path / "good.yaml").write_text((REPO / "journeys" / "newsletter_welcome.yaml").read_text())

    result = runner.invoke(app, ["journeys", "validate", str(tmp_path)])

    assert result.exit_code == 1, result.output
    errors = result.stderr.splitlines()
    assert errors[-1] == "3 error(s)"
    unknown, condition, duration = errors[:-1]
    # The unknown key is pointed at where it is written, with the keys that are allowed.
    assert unknown.startswith(f"{broken}:3:1: unknown key 'audience' in the journey (hint: ")
    assert "trigger" in unknown
    # The CEL syntax error is pointed at inside the condition (the value starts at column 9).
    where, _, message = condition.partition(": ")
    file, line, column = where.rsplit(":", 2)
    assert (file, line) == (str(broken), "6")
    assert 9 <= int(column) <= len("  when: event.properties.total >=") + 1
    assert message.startswith("trigger.when: ")
    # The bad duration names the field and says how to write one.
    assert duration.startswith(f"{broken}:8:11: wait: '1 week' is not a duration")
    assert "30s, 15m, 1h" in duration
    # Nothing is reported as valid when the run fails.
    assert result.stdout == ""


def test_validate_missing_path_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    result = runner.invoke(app, ["journeys", "validate", str(missing)])
    assert result.exit_code == 2
    assert result.stderr == f"{missing}: no such file or directory\n"
    assert result.stdout == ""


def test_db_upgrade_is_up_to_date(runner: CliRunner) -> None:
    # The session fixture already upgraded the test database: this runs again on it.
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "database is up to date\n"
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    with get_engine().connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == head
