"""Broadcast tests: a broadcasts directory of the test's own, the shipped segment files
loaded (the lifecycle's `active` stage is the usual audience), the virtual clock at T0."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from app import clock
from app.broadcasts.models import Recipient
from app.cli import app
from app.db import session_scope
from app.segments import catalog
from tests.helpers import REPO, configure

# A day after T0: local 09:00 comes after T0 (09:00 UTC) on every clock.
TOMORROW = "2026-11-03T09:00"

NEWSLETTER = """\
id: {id}
name: November newsletter
audience: {audience}
at: {at}
{extra}send: {{channel: email, message: news}}
messages:
  news:
    email:
      subject: "News for {{{{ profile.traits.first_name }}}}"
      html: "<p>Hello {{{{ profile.traits.first_name }}}}</p>"
"""


def newsletter(
    id: str = "november",  # noqa: A002 (the file's key)
    audience: str = "{segment: active}",
    at: str = TOMORROW,
    extra: str = "",
) -> str:
    return NEWSLETTER.format(id=id, audience=audience, at=at, extra=extra)


Write = Callable[..., Path]


@pytest.fixture
def folder(tmp_path: Path, settings_env: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "broadcasts"
    path.mkdir()
    configure(settings_env, broadcasts_dir=path)
    assert catalog.sync_directory(REPO / "segments") == []
    return path


@pytest.fixture
def write(folder: Path) -> Write:
    """Write a broadcast file (the newsletter unless given text) into the folder."""

    def put(text: str | None = None, name: str = "november.yaml", **changes: Any) -> Path:
        path = folder / name
        path.write_text(text if text is not None else newsletter(**changes))
        return path

    return put


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def recipients(broadcast_id: str = "november") -> dict[str, Recipient]:
    with session_scope() as session:
        rows = session.scalars(select(Recipient).where(Recipient.broadcast_id == broadcast_id))
        return {row.profile_id: row for row in rows}


def at_clock(manual: clock.ManualClock, when: str) -> None:
    """Move the virtual clock to an ISO instant (forward only, as time goes)."""
    target = datetime.fromisoformat(when)
    assert target >= clock.now()
    manual.advance(target - clock.now())
