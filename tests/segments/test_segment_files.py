"""Segment files: the issue's shape loads; every mistake is refused at load with its
file:line:column and a hint; a running system keeps the previous version of a broken file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from app import clock
from app.cli import app
from app.db import session_scope
from app.segments import catalog
from app.segments.language import SegmentFile
from app.segments.loader import load_path
from app.segments.models import SegmentVersion
from app.yamlfiles import Issue
from tests.helpers import cart, person_at, route

ISSUE_SHAPE = """\
id: frequent-abandoners
name: Two abandoned carts in 30 days and no order
traits:                                   # computed traits; names are global
  carts_30d:  {count: "Cart Abandoned", within: 30d}
  spend_365d: {sum: "Order Completed", of: properties.total, within: 365d}
  last_order: {last: "Order Completed", of: timestamp}
when: profile.computed.carts_30d >= 2 && !has(profile.computed.last_order)
channels: [sms, email]
"""


def write(directory: Path, **files: str) -> Path:
    for name, text in files.items():
        (directory / f"{name}.yaml").write_text(text, encoding="utf-8")
    return directory


def issues_of(directory: Path) -> list[Issue]:
    return load_path(directory)[1]


def test_the_issue_s_shape_loads(tmp_path: Path) -> None:
    [definition], issues = load_path(write(tmp_path, a=ISSUE_SHAPE))
    assert issues == []
    assert [t.name for t in definition.aggregates] == ["carts_30d", "spend_365d", "last_order"]
    assert definition.segments[0].channels == ("sms", "email")


def test_the_shipped_directory_is_valid() -> None:
    files, issues = load_path(Path(__file__).resolve().parents[2] / "segments")
    assert issues == []
    assert {f.id for f in files} == {"lifecycle", "frequent-abandoners"}


BAD = [
    (
        "traits:\n  x: {average: Cart Abandoned}\n",
        "f.yaml:4:7: unknown key 'average' in traits.x",
        "allowed: count, sum, min, max, first, last, distinct",
    ),
    (
        "traits:\n  x: {count: Cart Abandoned, within: soon}\n",
        "f.yaml:4:38: traits.x.within: 'soon' is not a duration",
        "e.g. 30d",
    ),
    (
        "traits:\n  x: {sum: Order Completed}\n",
        "f.yaml:4:6: traits.x: sum needs `of`",
        "of: properties.total",
    ),
    (
        'traits:\n  x: {count: A, where: "event.properties.total = 1"}\n',
        "f.yaml:4:48: traits.x.where: unexpected character '='",
        "CEL uses ==",
    ),
    (
        "when: profile.computed.x + 1\n",
        "f.yaml:3:7: when must be true or false",
        "compare it",
    ),
    (
        "traits:\n  x: {count: A}\nwhen: profile.computed.x\n",
        "f.yaml:5:24: when must be true or false, but trait 'x' is a number (count)",
        "compare it",
    ),
    (
        "when: profile.computed.nope >= 1\n",
        "f.yaml:3:24: when: trait 'nope' is not defined",
        "define it under traits",
    ),
    (
        "when: \"'vip' in profile.segments\"\n",
        "f.yaml:3:25: when: profile.segments cannot be read here",
        "profile.computed",
    ),
    (
        'traits:\n  a: {compute: "profile.computed.b + 1"}\n'
        '  b: {compute: "profile.computed.a * 2"}\n',
        "f.yaml:4:3: computed traits read each other in a cycle: a -> b -> a",
        "do not read it back",
    ),
    ("channels: [fax]\n", "f.yaml:3:12: channels[0]: unknown channel 'fax'", "allowed: email"),
    (
        "stages:\n  - {id: a}\n  - {id: b}\n",
        "stage 'a' has no `when` but is not the last stage",
        "only the last stage",
    ),
    ("traits:\n  x: {count: A}\n  x: {count: B}\n", "f.yaml:5:3: invalid YAML", "only once"),
]


@pytest.mark.parametrize(("body", "message", "hint"), BAD)
def test_each_mistake_is_refused_with_its_position_and_a_hint(
    tmp_path: Path, body: str, message: str, hint: str
) -> None:
    (tmp_path / "f.yaml").write_text(f"id: s\nname: S\n{body}", encoding="utf-8")
    found = issues_of(tmp_path)
    assert any(message in str(issue) and hint in (issue.hint or "") for issue in found), found


def test_a_trait_defined_in_two_files_is_refused_where_it_is_defined_again(
    tmp_path: Path,
) -> None:
    write(tmp_path, a=ISSUE_SHAPE, b="id: other\nname: O\ntraits:\n  carts_30d: {count: X}\n")
    [issue] = issues_of(tmp_path)
    assert str(issue).startswith(f"{tmp_path}/b.yaml:4:3: trait 'carts_30d' is defined twice")
    assert issue.hint is not None and "a.yaml:4:3" in issue.hint


def test_two_files_of_stages_are_refused(tmp_path: Path) -> None:
    stages = "name: S\nstages:\n  - {id: {0}-all}\n"
    write(
        tmp_path, a="id: a\n" + stages.replace("{0}", "a"), b="id: b\n" + stages.replace("{0}", "b")
    )
    assert [i.message for i in issues_of(tmp_path)] == ["lifecycle stages are defined twice"]


def test_every_mistake_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    write(tmp_path, f="id: Bad Id\nname: x\ntraits:\n  a: {count: X, within: soon}\nwhen: 1\n")
    assert len(issues_of(tmp_path)) == 3


def test_the_json_schema_comes_from_the_models() -> None:
    schema = SegmentFile.model_json_schema()
    assert schema["required"] == ["id", "name"]
    assert "within" in json.dumps(schema)


def test_a_broken_file_keeps_its_previous_version_running(tmp_path: Path) -> None:
    write(tmp_path, a=ISSUE_SHAPE)
    assert catalog.sync_directory(tmp_path) == []
    write(tmp_path, a=ISSUE_SHAPE.replace("within: 30d", "within: soon"))
    assert len(catalog.sync_directory(tmp_path)) == 1
    with session_scope() as session:
        [current] = catalog.versions(session)
        assert current.version == 1 and "within: 30d" in current.source
        assert session.scalars(select(SegmentVersion)).all() == [current]


# --------------------------------------------------------------------------- the command line


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()


def test_validate_list_show_and_members(cli: CliRunner, manual_clock: clock.ManualClock) -> None:
    shipped = Path(__file__).resolve().parents[2] / "segments"
    result = cli.invoke(app, ["segments", "validate", str(shipped)])
    assert result.exit_code == 0, result.output
    assert "ok  " in result.stdout and "lifecycle (stages, 5 traits)" in result.stdout

    assert catalog.sync_directory(shipped) == []
    route(person_at(), cart(30, minutes=0), cart(40, minutes=1))
    listed = cli.invoke(app, ["segments", "list"]).stdout.splitlines()
    assert any(line.split()[:3] == ["frequent-abandoners", "segment", "1"] for line in listed)
    assert any(line.split()[:3] == ["new", "stage", "1"] for line in listed)

    shown = json.loads(cli.invoke(app, ["segments", "show", "frequent-abandoners"]).stdout)
    assert shown["members"] == 1 and shown["traits"]["carts_30d"]["within"] == "30 days, 0:00:00"
    members = cli.invoke(app, ["segments", "members", "frequent-abandoners", "--limit", "5"])
    assert members.exit_code == 0 and "\talice\t" in members.stdout


def test_bad_input_on_the_command_line(cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "f.yaml").write_text("id: s\nname: S\nwhen: 1\n", encoding="utf-8")
    result = cli.invoke(app, ["segments", "validate", str(tmp_path)])
    assert result.exit_code == 1 and "f.yaml:3:7: when must be text" in result.stderr
    assert cli.invoke(app, ["segments", "validate", str(tmp_path / "none")]).exit_code == 2
    assert cli.invoke(app, ["segments", "show", "nobody"]).exit_code == 1
    assert cli.invoke(app, ["segments", "members", "nobody"]).exit_code == 1
    assert cli.invoke(app, ["segments", "members", "new", "--limit", "0"]).exit_code == 2
