"""What a rendered WhatsApp message may hold, and when the 24-hour window is open."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from channels.base import ContentRefused
from channels.whatsapp import window
from channels.whatsapp.content import choose, describe, finish
from tests.channels.whatsapp.twilio_whatsapp import TEST_CONTENT_SID
from tests.helpers import T0


def test_variables_are_read_from_json_and_written_back_compact() -> None:
    rendered = '{ "1": "Ada", "2": 15, "code": "  BIENVENUE15 " }'
    finished = finish({"content_sid": TEST_CONTENT_SID, "variables": rendered, "text": ""})
    assert finished == {
        "content_sid": TEST_CONTENT_SID,
        "variables": '{"1":"Ada","2":"15","code":"BIENVENUE15"}',
    }


def test_tojson_escapes_come_back_as_the_data() -> None:
    """Jinja's tojson writes <, >, & and ' as \\u escapes; Twilio gets the characters."""
    finished = finish(
        {"content_sid": TEST_CONTENT_SID, "variables": '{"1": "L\\u0027\\u00e9t\\u00e9 \\u0026"}'}
    )
    assert json.loads(finished["variables"]) == {"1": "L'été &"}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ({}, "needs content_sid (an approved template, sent at any time) or text"),
        ({"text": "  ", "variables": ""}, "needs content_sid"),
        ({"content_sid": "HX123"}, "content_sid 'HX123' is not a Twilio Content SID"),
        ({"text": "x" * 1601}, "1,601 characters long; Twilio takes at most 1,600"),
        ({"text": "Bonjour", "variables": '{"1": "Ada"}'}, "give its content_sid too"),
        ({"variables": '{"1": "Ada",}'}, "did not render to a JSON object"),
        ({"variables": '["Ada"]'}, "must render to a JSON object"),
        ({"variables": '{"1": "Ada", "1": "Eve"}'}, "variable '1' is given twice"),
        ({"variables": '{"first name": "Ada"}'}, "'first name' is not a template placeholder"),
        ({"variables": '{"1": ""}'}, "variable '1' is empty"),
        ({"variables": '{"1": null}'}, "must be text or a number, not None"),
        ({"variables": '{"1": true}'}, "must be text or a number"),
        ({"variables": '{"1": "a\\nb"}'}, "holds a line break"),
        ({"variables": '{"1": "a     b"}'}, "more than 4 spaces in a row"),
        ({"variables": json.dumps({"1": "x" * 1601})}, "1,601 characters long; at most 1,600"),
        ({"variables": json.dumps({str(n): "x" for n in range(101)})}, "at most 100"),
    ],
)
def test_content_twilio_would_refuse_is_refused_at_render(
    content: dict[str, str], reason: str
) -> None:
    if "variables" in content and "text" not in content:
        content = {"content_sid": TEST_CONTENT_SID, **content}
    with pytest.raises(ContentRefused) as refused:
        finish(content)
    assert reason in str(refused.value)


def test_the_form_is_chosen_by_the_window() -> None:
    both = {"text": "Bonjour", "content_sid": TEST_CONTENT_SID, "variables": '{"1":"Ada"}'}
    assert choose(both, session_open=True) == {"body": "Bonjour"}
    assert choose(both, session_open=False) == {
        "content_sid": TEST_CONTENT_SID,
        "content_variables": '{"1":"Ada"}',
    }
    assert choose({"content_sid": TEST_CONTENT_SID}, session_open=True) == {
        "content_sid": TEST_CONTENT_SID
    }
    assert choose({"text": "Bonjour"}, session_open=False) == (
        "outside the 24-hour window WhatsApp needs an approved template (content_sid)"
    )


def test_preview_says_which_form_goes_when() -> None:
    text = finish({"text": "Bonjour"})
    template = finish({"content_sid": TEST_CONTENT_SID, "variables": '{"1": "Ada"}'})
    assert describe(text) == (
        "text of 7 characters, inside the 24-hour window only (fails outside it)"
    )
    assert describe(template) == f"template {TEST_CONTENT_SID} with 1 variable, at any time"
    assert describe({**text, **template}) == (
        f"text of 7 characters inside the 24-hour window, template {TEST_CONTENT_SID} with "
        "1 variable outside it"
    )


@pytest.mark.parametrize(
    ("wrote_ago", "open_"),
    [
        (None, False),
        (timedelta(0), True),
        (timedelta(hours=23, minutes=54, seconds=59), True),
        (timedelta(hours=23, minutes=55), False),  # the last 5 minutes are not used
        (timedelta(days=3), False),
        (-timedelta(minutes=4), True),  # another process's clock a little ahead
        (-timedelta(minutes=6), False),  # a time ahead of now is not believed
    ],
)
def test_the_window_is_24_hours_less_a_margin(wrote_ago: timedelta | None, open_: bool) -> None:
    last = None if wrote_ago is None else T0 - wrote_ago
    assert window.is_open(last, T0) is open_


@pytest.mark.parametrize(
    "value", [None, 42, "yesterday", "2026-11-02T09:00:00", ["2026-11-02T09:00:00+00:00"]]
)
def test_a_trait_that_is_not_a_time_with_its_offset_opens_no_window(value: object) -> None:
    assert window.moment(value) is None


def test_the_trait_as_the_webhook_writes_it_is_read_back() -> None:
    assert window.moment(T0.isoformat()) == T0
