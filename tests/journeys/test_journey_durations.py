"""Durations are `<whole number><s|m|h|d>`, positive."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.journeys.definition import parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2s", timedelta(seconds=2)),
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("1h", timedelta(hours=1)),
        ("7d", timedelta(days=7)),
        ("90m", timedelta(minutes=90)),
    ],
)
def test_valid(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1 hour", "'1 hour' is not a duration like 30s, 15m, 1h or 7d; did you mean '1h'?"),
        ("2 days", "'2 days' is not a duration like 30s, 15m, 1h or 7d; did you mean '2d'?"),
        ("1.5h", "'1.5h' is not a duration like 30s, 15m, 1h or 7d"),
        ("-5m", "'-5m' is not a duration like 30s, 15m, 1h or 7d"),
        ("1w", "'1w' is not a duration like 30s, 15m, 1h or 7d"),
        ("", "'' is not a duration like 30s, 15m, 1h or 7d"),
        ("0s", "duration '0s' must be greater than zero"),
        ("9999999999d", "duration '9999999999d' is too long"),
    ],
)
def test_invalid(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert str(info.value) == message
