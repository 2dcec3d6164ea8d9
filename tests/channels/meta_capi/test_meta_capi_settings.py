"""The channel's own settings: read from the environment, and a bad value stops every process
at start with one line naming the variable."""

from __future__ import annotations

import os
import subprocess

import pytest
from pydantic import ValidationError

from channels import registry
from channels.meta_capi.settings import MetaCapiSettings
from tests.processes import CARILLON


def test_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARILLON_META_PIXEL_ID", " 1234567890123456 ")
    monkeypatch.setenv("CARILLON_META_CAPI_TEST_EVENT_CODE", "TEST12345")
    own = MetaCapiSettings()
    assert (own.meta_pixel_id, own.meta_capi_test_event_code) == ("1234567890123456", "TEST12345")


def test_unset_or_empty_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARILLON_META_PIXEL_ID", raising=False)
    monkeypatch.setenv("CARILLON_META_CAPI_TEST_EVENT_CODE", "")
    own = MetaCapiSettings()
    assert (own.meta_pixel_id, own.meta_capi_test_event_code) == (None, None)


@pytest.mark.parametrize(
    ("field", "value", "complaint"),
    [
        ("meta_pixel_id", "px-123", "'px-123' is not a Meta pixel id: digits only"),
        ("meta_pixel_id", "1" * 33, "is not a Meta pixel id"),
        ("meta_capi_test_event_code", "TEST 1", "'TEST 1' is not a test event code"),
    ],
)
def test_bad_values_are_refused(field: str, value: str, complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        MetaCapiSettings(**{field: value})


def test_the_spec_declares_them() -> None:
    assert registry.spec("meta_capi").settings is MetaCapiSettings


@pytest.mark.parametrize("role", ["serve", "worker"])
def test_a_bad_pixel_id_stops_the_process_with_one_line(role: str) -> None:
    env = {**os.environ, "CARILLON_META_PIXEL_ID": "pixel-1", "CARILLON_REDIS_URL": "redis://x"}
    done = subprocess.run([CARILLON, role], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "carillon: CARILLON_META_PIXEL_ID: 'pixel-1' is not a Meta pixel id: digits only, as "
        "Events Manager shows it, e.g. 1234567890123456"
    ]
