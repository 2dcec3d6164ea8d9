"""CARILLON_SEND_KEYS: a bad value stops every process at start with one line saying why."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.processes import CARILLON


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("shop=short", "a key of 5 characters is too short"),
        ("shop=shop-write-key-0123456789", "a send key is also a write or read key"),
        ("shop=crm-read-key-0123456789ab", "a send key is also a write or read key"),
    ],
)
def test_a_bad_send_key_stops_the_start(value: str, complaint: str) -> None:
    env = {
        **os.environ,
        "CARILLON_SEND_KEYS": value,
        "CARILLON_WRITE_KEYS": "shop=shop-write-key-0123456789",
        "CARILLON_READ_KEYS": "crm=crm-read-key-0123456789ab",
    }
    done = subprocess.run([CARILLON, "serve"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith(f"carillon: CARILLON_SEND_KEYS: {complaint}")
    assert len(done.stderr.strip().splitlines()) == 1  # one line, no traceback
