"""`carillon profiles show|export|erase`: the same requests from a terminal, with exit codes
scripts can rely on (0 done, 1 unknown or erased person, 2 malformed id)."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from app.cli import app
from app.db import session_scope
from app.profiles.models import ProfileAudit
from tests.helpers import Pipeline
from tests.profiles.conftest import EMAIL, USER, shopper

runner = CliRunner()


def test_show_export_and_erase_from_the_command_line(
    client: TestClient, pipeline: Pipeline
) -> None:
    shopper(client, pipeline)
    shown = runner.invoke(app, ["profiles", "show", f"email:{EMAIL}", "--limit", "1"])
    assert shown.exit_code == 0, shown.output
    person = json.loads(shown.stdout)
    assert person["traits"]["first_name"] == "Ada" and len(person["events"]) == 1

    exported = runner.invoke(app, ["profiles", "export", USER])
    assert exported.exit_code == 0, exported.output
    assert len(json.loads(exported.stdout)["tables"]["events"]) == 5

    refused = runner.invoke(app, ["profiles", "erase", USER], input="n\n")
    assert refused.exit_code == 1
    assert runner.invoke(app, ["profiles", "show", USER]).exit_code == 0  # still there

    erased = runner.invoke(app, ["profiles", "erase", USER, "--yes"])
    assert erased.exit_code == 0, erased.output
    assert json.loads(erased.stdout)["status"] == "erased"
    again = runner.invoke(app, ["profiles", "erase", f"email:{EMAIL}", "--yes"])
    assert again.exit_code == 0 and again.stdout == erased.stdout

    gone = runner.invoke(app, ["profiles", "show", USER])
    assert gone.exit_code == 1 and "erased at" in gone.output
    with session_scope() as session:
        actors = session.scalars(select(ProfileAudit.actor)).all()
        assert len(actors) == 3 and all(a.startswith("command line") for a in actors)


def test_unknown_and_malformed_ids(client: TestClient) -> None:
    unknown = runner.invoke(app, ["profiles", "show", "email:nobody@example.org"])
    assert unknown.exit_code == 1
    assert "nobody is known as" in unknown.output
    for command in ("show", "export"):
        malformed = runner.invoke(app, ["profiles", command, "phone:"])
        assert malformed.exit_code == 2 and "names nobody" in malformed.output
    malformed = runner.invoke(app, ["profiles", "erase", "email:", "--yes"])
    assert malformed.exit_code == 2
