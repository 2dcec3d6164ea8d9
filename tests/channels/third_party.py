"""A channel shipped as its own package, the way a third party would: the example of
docs/channels.md ("Write your own channel"), its module and its pyproject.toml taken from the
page, installed as a distribution on the path. Nothing in Carillon is changed or patched to
add it, and the page cannot show an example Carillon no longer accepts."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from app.settings import channel_names, get_settings
from channels import registry

DOC = Path(__file__).resolve().parents[2] / "docs" / "channels.md"
SECTION = "## Write your own channel"


def documented_example() -> tuple[str, dict[str, object]]:
    """The section's Python module and its parsed pyproject.toml."""
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index(SECTION) :].split("\n## ", 1)[0]
    blocks = dict(re.findall(r"```(python|toml)\n(.*?)```", section, flags=re.DOTALL))
    return blocks["python"], tomllib.loads(blocks["toml"])


@contextmanager
def push_channel(directory: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Install the documented package into `directory`, put it on the path, and forget it
    afterwards."""
    module, pyproject = documented_example()
    project = pyproject["project"]
    assert isinstance(project, dict)
    (name, target), *_ = project["entry-points"]["carillon.channels"].items()
    (directory / f"{target.split(':')[0]}.py").write_text(module, encoding="utf-8")
    dist = directory / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n",
        encoding="utf-8",
    )
    (dist / "entry_points.txt").write_text(
        f"[carillon.channels]\n{name} = {target}\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(directory))
    registry.specs.cache_clear()
    channel_names.cache_clear()
    try:
        yield
    finally:
        monkeypatch.undo()
        registry.specs.cache_clear()
        channel_names.cache_clear()
        get_settings.cache_clear()
