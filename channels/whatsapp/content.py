"""A WhatsApp message's content once rendered, and which form of it goes out at send time.

A journey gives an approved template (`content_sid`, an `HX…` Content SID, with `variables`)
and/or free `text`. WhatsApp takes free text only inside the 24-hour customer-service window
that opens each time the person writes to the business; outside it only an approved template
may start the conversation (Twilio error 63016). Which form goes is decided when the message
is sent, not when it is planned, since a person may write in between.

`variables` is one Jinja2 template that renders to a JSON object, because a content key is one
template: `'{"1": {{ profile.traits.first_name | tojson }}, "2": "BIENVENUE15"}'`. `tojson`
keeps a quote or a brace in the data from ending the string early.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from channels.base import ContentRefused

TEXT, CONTENT_SID, VARIABLES = "text", "content_sid", "variables"
KEYS = frozenset({TEXT, CONTENT_SID, VARIABLES})
CONTENT_SID_PATTERN = re.compile(r"HX[0-9a-fA-F]{32}")
# Twilio: a message Body holds 1,600 characters; a template 100 variables, each named by at
# most 16 letters or digits, each value at most 1,600 characters.
MAX_TEXT = 1600
MAX_VARIABLES = 100
VARIABLE_NAME = re.compile(r"[A-Za-z0-9_]{1,16}")
MAX_VARIABLE_VALUE = 1600
# WhatsApp refuses a template parameter with a line break, a tab or more than four spaces in
# a row, and an empty one (Twilio 63013, channel policy).
_FORBIDDEN_SPACING = re.compile(r"[\n\r\t]| {5,}")
OUTSIDE_WINDOW = "outside the 24-hour window WhatsApp needs an approved template (content_sid)"
VARIABLES_EXAMPLE = '\'{"1": {{ profile.traits.first_name | tojson }}, "2": "BIENVENUE15"}\''


def finish(content: dict[str, str]) -> dict[str, str]:
    """The content as it will be sent: blank keys dropped, the Content SID checked, the
    variables parsed and written back as compact JSON. Raises `ContentRefused` when no form
    could ever be sent or Twilio would refuse it whatever the window."""
    text = content.get(TEXT, "")
    sid = content.get(CONTENT_SID, "").strip()
    variables = parse_variables(content.get(VARIABLES, ""))
    finished: dict[str, str] = {}
    if text.strip():
        if len(text) > MAX_TEXT:
            raise ContentRefused(
                f"the WhatsApp text is {len(text):,} characters long; Twilio takes at most "
                f"{MAX_TEXT:,}"
            )
        finished[TEXT] = text
    if sid:
        if not CONTENT_SID_PATTERN.fullmatch(sid):
            raise ContentRefused(
                f"content_sid {sid!r} is not a Twilio Content SID (HX and 32 hexadecimal "
                "digits, as the Content Template Builder shows it)"
            )
        finished[CONTENT_SID] = sid
    if variables:
        if not sid:
            raise ContentRefused("variables fill an approved template: give its content_sid too")
        finished[VARIABLES] = json.dumps(variables, ensure_ascii=False, separators=(",", ":"))
    if not finished.keys() & {TEXT, CONTENT_SID}:
        raise ContentRefused(
            "a WhatsApp message needs content_sid (an approved template, sent at any time) "
            "or text (sent only inside the 24-hour window)"
        )
    return finished


def parse_variables(rendered: str) -> dict[str, str]:
    """The template variables from their rendered JSON object; {} when none were given."""
    if not rendered.strip():
        return {}
    try:
        parsed = json.loads(rendered, object_pairs_hook=_no_repeats)
    except ValueError as exc:
        raise ContentRefused(
            f"variables did not render to a JSON object ({exc}); write them like "
            f"{VARIABLES_EXAMPLE}"
        ) from None
    if not isinstance(parsed, dict):
        raise ContentRefused(f"variables must render to a JSON object, e.g. {VARIABLES_EXAMPLE}")
    if len(parsed) > MAX_VARIABLES:
        raise ContentRefused(
            f"{len(parsed)} variables; a Twilio content template takes at most {MAX_VARIABLES}"
        )
    return {name: _variable(name, value) for name, value in parsed.items()}


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A name given twice would let the later value win unseen (data that broke out of its
    string can repeat a name): refused instead."""
    found: dict[str, Any] = {}
    for name, value in pairs:
        if name in found:
            raise ValueError(f"variable {name!r} is given twice")
        found[name] = value
    return found


def _variable(name: str, value: Any) -> str:
    if not VARIABLE_NAME.fullmatch(name):
        raise ContentRefused(
            f"variable name {name!r} is not a template placeholder: letters, digits or _, "
            "at most 16, e.g. 1 for {{1}}"
        )
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ContentRefused(f"variable {name!r} must be text or a number, not {value!r}")
    text = str(value).strip()
    if not text:
        raise ContentRefused(f"variable {name!r} is empty; WhatsApp refuses empty parameters")
    if len(text) > MAX_VARIABLE_VALUE:
        raise ContentRefused(
            f"variable {name!r} is {len(text):,} characters long; at most {MAX_VARIABLE_VALUE:,}"
        )
    if _FORBIDDEN_SPACING.search(text):
        raise ContentRefused(
            f"variable {name!r} holds a line break, a tab or more than 4 spaces in a row; "
            "WhatsApp refuses them in template parameters"
        )
    return text


def choose(content: Mapping[str, Any], session_open: bool) -> dict[str, str] | str:
    """The Messages API parameters for the form that may go now, or why none may: inside the
    window the text when there is one, else the template; outside it the template only."""
    text = str(content.get(TEXT) or "")
    sid = str(content.get(CONTENT_SID) or "")
    if session_open and text.strip():
        return {"body": text}
    if sid:
        variables = str(content.get(VARIABLES) or "")
        return {"content_sid": sid, **({"content_variables": variables} if variables else {})}
    if text.strip():
        return OUTSIDE_WINDOW
    return "the WhatsApp message has neither content_sid nor text"


def describe(content: Mapping[str, str]) -> str:
    """One line for `carillon templates preview`: which form goes when."""
    parts = []
    if CONTENT_SID in content:
        count = len(json.loads(content[VARIABLES])) if VARIABLES in content else 0
        plural = "" if count == 1 else "s"
        parts.append(f"template {content[CONTENT_SID]} with {count} variable{plural}")
    if TEXT in content:
        size = len(content[TEXT])
        parts.append(f"text of {size} character{'' if size == 1 else 's'}")
    if len(parts) == 2:
        return f"{parts[1]} inside the 24-hour window, {parts[0]} outside it"
    if CONTENT_SID in content:
        return f"{parts[0]}, at any time"
    return f"{parts[0]}, inside the 24-hour window only (fails outside it)"
