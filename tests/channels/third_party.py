"""A channel shipped as its own package, the way a third party would: a distribution on the
path whose `carillon.channels` entry point names a `ChannelSpec`. Nothing in Carillon is
changed or patched to add it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from app.settings import channel_names
from channels import registry

PACKAGE = """
from channels.base import ChannelSpec, Consent
from channels.dry_run import DryRun


def _refusal(traits):
    return "push denied" if traits.get("push_consent") == "denied" else None


SPEC = ChannelSpec(
    name="push",
    provider="Example Push",
    description="A push notification.",
    address=None,
    required_content=frozenset({"title", "text"}),
    consent=Consent("push", "push_consent", frozenset({"allowed", "denied"}), _refusal, "denied"),
    credentials=lambda settings: False,
    build=lambda settings: DryRun("push"),
    rate_limit_account=lambda settings: None,
)
"""

ENTRY_POINTS = "[carillon.channels]\npush = carillon_push_channel:SPEC\n"


@contextmanager
def push_channel(directory: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Install `carillon-push-channel` into `directory`, put it on the path, and forget it
    afterwards."""
    (directory / "carillon_push_channel.py").write_text(PACKAGE, encoding="utf-8")
    dist = directory / "carillon_push_channel-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: carillon-push-channel\nVersion: 1.0\n", encoding="utf-8"
    )
    (dist / "entry_points.txt").write_text(ENTRY_POINTS, encoding="utf-8")
    monkeypatch.syspath_prepend(str(directory))
    registry.specs.cache_clear()
    channel_names.cache_clear()
    try:
        yield
    finally:
        monkeypatch.undo()
        registry.specs.cache_clear()
        channel_names.cache_clear()
