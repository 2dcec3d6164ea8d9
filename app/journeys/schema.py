"""The JSON Schema (draft 2020-12) of journey files, printed by `carillon journeys schema`.

Editors that speak JSON Schema (VS Code and others through the YAML language server) use it
to complete keys, show each key's `description` on hover and underline mistakes while a
marketer types, before any `carillon journeys validate`. It is built from the loader's own
constants (id pattern, limits, time format) and the channel registry, so each of those is
written in one place only.

The loader stays the authority. A schema cannot see inside CEL conditions or Jinja2
templates, add up split weights, require `else` to be the last arm of a branch, find steps
that can never run, or limit a journey to one split: those are checked by the loader only,
with `file:line:column` positions. Everything the schema rejects, the loader rejects
too (the tests hold both to one corpus of broken files).
"""

from __future__ import annotations

from typing import Any

from app.journeys.loader import (
    HOLDOUT,
    ID_PATTERN,
    KINDS,
    MAX_ARM_NAME_LENGTH,
    MAX_ID_LENGTH,
    MESSAGE_NAME_PATTERN,
    ON_CAP,
    TIME_PATTERN,
)
from app.journeys.templates import LOCALE_PATTERN
from channels import registry

DIALECT = "https://json-schema.org/draft/2020-12/schema"
_TEXT = r"\S"  # the loader refuses empty and blank text


# What each content key of a `send` step is, for hover help; a key a new channel brings
# without an entry here is still described, as a template.
def journey_schema() -> dict[str, Any]:
    """The whole journey format as a JSON Schema document."""
    return {
        "$schema": DIALECT,
        "title": "Carillon journey",
        "description": "One marketing journey: who enters (trigger), what happens to them "
        "(steps), when they leave (exit_when, goal). Check a file with "
        "`carillon journeys validate`.",
        "type": "object",
        "required": ["id", "name", "trigger", "steps"],
        "additionalProperties": False,
        "properties": {
            "id": {
                "description": "The journey's stable id: lowercase letters, digits and dashes. "
                "Changing the file's content makes a new version of the same journey; "
                "changing the id makes another journey.",
                "type": "string",
                "pattern": f"^{ID_PATTERN}$",
                "maxLength": MAX_ID_LENGTH,
                "examples": ["cart-abandonment"],
            },
            "name": _text("A readable name, shown to the team."),
            "description": _text("What the journey is for, in a sentence or two."),
            "enabled": {
                "description": "false stops new people from entering; trips already running "
                "finish. Default: true.",
                "type": "boolean",
            },
            "trigger": {
                "description": "Who enters: on an event, or on entering or leaving a segment.",
                "anyOf": [
                    _event_rule("Who enters: people who send this event, if `when` holds for it."),
                    _segment_rule(),
                ],
            },
            "exit_when": _event_rule(
                "Who leaves early: a person on the journey who sends this event (if `when` "
                "holds) leaves at once; pending waits and unsent messages are cancelled."
            ),
            "goal": _goal(),
            "re_entry": _re_entry(),
            "steps": {"$ref": "#/$defs/steps"},
            "tests": _tests(),
            "messages": _messages(),
            **_send_policy(),
        },
        # A transactional journey is never capped: caps or on_cap there is a mistake.
        "if": {"required": ["kind"], "properties": {"kind": {"const": "transactional"}}},
        "then": {"not": {"anyOf": [{"required": ["caps"]}, {"required": ["on_cap"]}]}},
        "$defs": {**_defs(), **_message_defs()},
    }


def _send_policy() -> dict[str, Any]:
    """What the journey's messages obey at send time (docs/delivery.md)."""
    cap = {
        "description": "count/duration: at most `count` messages in any `duration`, e.g. 1/24h.",
        "type": "string",
        "pattern": r"^\s*0*[1-9][0-9]*\s*/\s*0*[1-9][0-9]*[smhd]\s*$",
        "examples": ["1/24h", "3/7d"],
    }
    return {
        "kind": {
            "description": "marketing (default) or transactional: messages the person asked "
            "for (receipts, password resets), exempt from quiet hours and frequency caps.",
            "enum": list(KINDS),
        },
        "priority": {
            "description": "A whole number, default 0. When messages compete for a person's "
            "last capped slot on a channel, the higher-priority journey's message gets it.",
            "type": "integer",
        },
        "on_cap": {
            "description": "What a capped message does: defer (default), sent once the cap "
            "allows; or drop, not sent at all.",
            "enum": list(ON_CAP),
        },
        "caps": {
            "description": "Frequency caps for this journey's messages, per channel, instead "
            "of CARILLON_FREQUENCY_CAPS; [] leaves the channel uncapped for this journey. "
            "Counted over every journey's messages to the person.",
            "type": "object",
            "propertyNames": {"enum": list(registry.names())},
            "additionalProperties": {
                "oneOf": [cap, {"type": "array", "items": cap}],
            },
            "examples": [{registry.names()[0]: ["1/24h", "3/7d"]}],
        },
    }


# --- building blocks -----------------------------------------------------------------------


def _text(description: str, **extra: Any) -> dict[str, Any]:
    return {"description": description, "type": "string", "pattern": _TEXT, **extra}


def _object(
    description: str,
    properties: dict[str, Any],
    required: list[str],
    **extra: Any,
) -> dict[str, Any]:
    return {
        "description": description,
        "type": "object",
        "required": required,
        "additionalProperties": False,
        "properties": properties,
        **extra,
    }


def _duration(description: str) -> dict[str, Any]:
    return {"description": description, "$ref": "#/$defs/duration"}


def _event_rule(description: str, **more: Any) -> dict[str, Any]:
    properties = {
        "event": _text("The event name, exactly as the shop sends it (e.g. Order Completed)."),
        "when": {
            "$ref": "#/$defs/condition",
            "description": "Optional CEL condition on the event and the profile, e.g. "
            "event.properties.total >= 20.",
        },
        **more,
    }
    return _object(description, properties, ["event"])


def _segment_rule() -> dict[str, Any]:
    """`trigger: {segment: <id>, on: enter|exit}` (app/journeys/loader/segment_trigger.py)."""
    properties = {
        "segment": _text(
            "A segment or lifecycle stage id (segments/): people enter the journey when they "
            "enter it (on: enter) or leave it (on: exit).",
            pattern=r"^[a-z0-9][a-z0-9_-]*$",
        ),
        "on": {"description": "enter (default) or exit.", "enum": ["enter", "exit"]},
        "when": {
            "$ref": "#/$defs/condition",
            "description": "Optional CEL condition on the profile (and the event that flipped "
            "the membership).",
        },
    }
    return _object(
        "Who enters: people whose membership of a segment changes.", properties, ["segment"]
    )


def _goal() -> dict[str, Any]:
    return _event_rule(
        "What counts as a conversion. When the goal event arrives (and `when` holds), the "
        "conversion is recorded on the trip with its split arm and a running trip ends at "
        "once as converted. A trip that already completed still counts the conversion if the "
        "event comes within `within` of entry.",
        within=_duration(
            "How long after entering a conversion still counts, e.g. 7d. Without it, only "
            "while the trip is running."
        ),
        value={
            "$ref": "#/$defs/condition",
            "description": "The conversion's revenue: a CEL expression giving a number, e.g. "
            "event.properties.total. Credited to the trip's last message within its channel's "
            "attribution window. Needs currency.",
        },
        currency=_text(
            "The currency of value, an ISO 4217 code such as EUR. Needs value.",
            pattern="^[A-Z]{3}$",
        ),
    )


def _re_entry() -> dict[str, Any]:
    return {
        "description": "Whether someone may go through the journey again. Default: never.",
        "oneOf": [
            {
                "enum": ["never", "always"],
                "description": "never: once per person, ever. always: again each time the "
                "trigger fires (never twice at the same time).",
            },
            _object(
                "Again, but not before `cooldown` has passed since the last entry.",
                {"cooldown": _duration("e.g. 7d")},
                ["cooldown"],
            ),
        ],
    }


def _defs() -> dict[str, Any]:
    return {
        "duration": {
            "description": "A whole number and a unit: s, m, h or d (30s, 15m, 1h, 7d); "
            "greater than zero.",
            "type": "string",
            "pattern": "^0*[1-9][0-9]*[smhd]$",
            "examples": ["30s", "15m", "1h", "7d"],
        },
        "offset": {
            "description": "A time counted from the test's first event: 0s, or a duration "
            "such as 30m or 1h.",
            "type": "string",
            "pattern": "^[0-9]+[smhd]$",
            "examples": ["0s", "30m", "1h"],
        },
        "condition": _text(
            "A CEL expression that is true or false, over `event` (the event: event.event, "
            "event.properties) and `profile` (profile.traits, profile.email, profile.phone). "
            "Compiled when the file is loaded.",
            examples=["event.properties.total >= 20", 'profile.traits.lifecycle_stage == "new"'],
        ),
        "template": _text(
            "A Jinja2 template over `event` (the trigger event) and `profile`; an undefined "
            "value is an error unless a default is given: {{ x | default('...') }}."
        ),
        "steps": {
            "description": "The steps, run in order. A step is `exit` or a mapping with one "
            "step kind: wait, wait_for, branch, split, update_profile, send.",
            "type": "array",
            "minItems": 1,
            "items": {"$ref": "#/$defs/step"},
        },
        "step": {
            "oneOf": [
                {
                    "const": "exit",
                    "description": "End the trip here (steps after it could never run).",
                },
                {"$ref": "#/$defs/wait"},
                {"$ref": "#/$defs/wait_for"},
                {"$ref": "#/$defs/branch"},
                {"$ref": "#/$defs/split"},
                {"$ref": "#/$defs/update_profile"},
                {"$ref": "#/$defs/send"},
            ]
        },
        "wait": _step("wait", _wait()),
        "wait_for": _object(
            "Pause until the person sends an event, at most `timeout`.",
            {"wait_for": _wait_for(), "on_timeout": _on_timeout()},
            ["wait_for"],
        ),
        "branch": _step("branch", _branch()),
        "split": _step("split", _split()),
        "update_profile": _step("update_profile", _update_profile()),
        "send": _step("send", _send()),
    }


def _step(kind: str, value: dict[str, Any]) -> dict[str, Any]:
    return _object(value["description"], {kind: value}, [kind])


# --- steps ---------------------------------------------------------------------------------


def _wait() -> dict[str, Any]:
    return {
        "description": "Pause the trip: for a duration (wait: 1h) or until a time of day "
        '(wait: {until: "09:00"}).',
        "oneOf": [
            _duration("How long to pause, e.g. 1h."),
            _object(
                "Until the next such time of day, strictly after now, in the person's "
                "timezone (profile trait `timezone`, an IANA name such as Europe/Paris; "
                "else the CARILLON_DEFAULT_TIMEZONE setting, default UTC).",
                {
                    "until": {
                        "description": 'A 24-hour time HH:MM, in quotes: "09:00".',
                        "type": "string",
                        "pattern": f"^{TIME_PATTERN}$",
                        "examples": ["09:00", "18:30"],
                    }
                },
                ["until"],
            ),
        ],
    }


def _wait_for() -> dict[str, Any]:
    return _event_rule(
        "Pause until the person sends `event` (if `when` holds; here `event` is that event), "
        "at most `timeout`. When it comes, the trip goes on after this step; on timeout the "
        "`on_timeout` steps run first, then the steps after this one.",
        timeout=_duration("The longest wait, e.g. 2d. Required."),
    ) | {"required": ["event", "timeout"]}


def _on_timeout() -> dict[str, Any]:
    return {
        "description": "Steps run when the wait_for times out, before the steps after it. "
        "Written beside wait_for, lined up under it.",
        "$ref": "#/$defs/steps",
    }


def _branch() -> dict[str, Any]:
    when_arm = _object(
        "Runs `steps` if `when` holds (and no earlier arm's did).",
        {
            "when": {"$ref": "#/$defs/condition"},
            "steps": {"$ref": "#/$defs/steps"},
        },
        ["when", "steps"],
    )
    else_arm = _object(
        "Runs when no other arm's condition holds. At most one, and last.",
        {"else": {"$ref": "#/$defs/steps"}},
        ["else"],
    )
    return {
        "description": "The first arm whose `when` holds runs, else the `else` arm; with "
        "none, the trip goes on after the branch. After the arm, it goes on after the branch.",
        "type": "array",
        "minItems": 1,
        "items": {"anyOf": [when_arm, else_arm]},
        "allOf": [
            {"contains": when_arm},
            {"contains": else_arm, "minContains": 0, "maxContains": 1},
        ],
    }


def _split() -> dict[str, Any]:
    weight = {
        "description": "The arm's share of people, in percent; a split's weights total 100.",
        "type": "integer",
        "minimum": 1,
        "maximum": 100,
    }
    arm = _object(
        "An arm of the test: `weight` % of people run its `steps`.",
        {
            "weight": weight,
            "steps": {"$ref": "#/$defs/steps"},
            "name": {
                "description": "The arm's name in reports (default A, B, C… in order).",
                "type": "string",
                "pattern": _TEXT,
                "maxLength": MAX_ARM_NAME_LENGTH,
                "not": {"const": HOLDOUT},
            },
        },
        ["weight", "steps"],
    )
    holdout = _object(
        "The control group: `weight` % of people get no message from this journey for the "
        "rest of the trip, but their conversions are counted. No steps.",
        {
            "holdout": {"const": True, "description": "Marks the holdout arm."},
            "weight": weight,
        },
        ["holdout", "weight"],
    )
    return {
        "description": "An A/B/n test: each person goes down one weighted arm, chosen from "
        "the profile id and journey version only, and recorded on the trip and its "
        "deliveries. At most one split per journey; after the arm the trip goes on after it.",
        "type": "array",
        "minItems": 2,
        "items": {"anyOf": [arm, holdout]},
        "allOf": [
            {"contains": arm},
            {"contains": holdout, "minContains": 0, "maxContains": 1},
        ],
    }


def _update_profile() -> dict[str, Any]:
    return _object(
        "Set profile traits, as if the shop had sent them now.",
        {
            "set": {
                "description": "trait: value. Text values are Jinja2 templates; numbers, "
                "true/false and null are stored as they are. No lists or mappings.",
                "type": "object",
                "minProperties": 1,
                "propertyNames": {"pattern": _TEXT},
                "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
            }
        },
        ["set"],
    )


def _send() -> dict[str, Any]:
    return {
        "description": "Send one message; the content is rendered at send time, and consent, "
        "suppression, caps and quiet hours are checked then.",
        "oneOf": [
            *(_send_message(channel) for channel in registry.names()),
            *(_send_on(channel) for channel in registry.names()),
        ],
    }


def _send_on(channel: str) -> dict[str, Any]:
    keys = sorted(registry.required_content(channel))
    spec = registry.spec(channel)
    properties: dict[str, Any] = {"channel": {"const": channel, "description": spec.description}}
    for key in keys:
        properties[key] = _content(channel, key)
    if spec.undo is not None:
        properties["remove_on_exit"] = {
            "type": "boolean",
            "description": "Take the person out of the audience again when the trip exits "
            "(exit_when) or reaches its goal.",
        }
    description = f"{spec.description} Needs: {', '.join(keys)}."
    return _object(description, properties, ["channel", *keys])


def _content(channel: str, key: str, note: str = "") -> dict[str, Any]:
    """A content key as the channel describes it (a template, maybe with a pattern)."""
    declared = dict(registry.spec(channel).content_schema.get(key, {}))
    description = declared.pop("description", f"The message's {key}. A Jinja2 template.")
    return {"$ref": "#/$defs/template", "description": description + note, **declared}


# --- messages: one message, adapted per channel and locale ----------------------------------


def _send_message(channel: str) -> dict[str, Any]:
    """`send: {channel, message}`: the inline form's other keys, the content from `messages:`."""
    content = registry.required_content(channel)
    inline = _send_on(channel)["properties"]
    properties = {key: value for key, value in inline.items() if key not in content}
    properties["message"] = {
        "description": "The name of an entry of `messages:` (top level of the file); its "
        f"{channel} variant is sent, in the person's locale (profile trait `locale`).",
        "type": "string",
        "pattern": f"^{MESSAGE_NAME_PATTERN}$",
    }
    description = f"{registry.spec(channel).description} The content comes from `messages:`."
    return _object(description, properties, ["channel", "message"])


def _messages() -> dict[str, Any]:
    return {
        "description": "Messages that send steps use by name (`send: {channel: sms, message: "
        "welcome}`): one theme with a variant per channel, and per locale under `locales`.",
        "type": "object",
        "minProperties": 1,
        "propertyNames": {"pattern": f"^{MESSAGE_NAME_PATTERN}$"},
        "additionalProperties": {"$ref": "#/$defs/message"},
    }


def _message_defs() -> dict[str, Any]:
    variants = {ch: {"$ref": f"#/$defs/{ch}_variant"} for ch in registry.names()}
    locale = {
        "description": "This locale's variants; a channel left out falls back to the "
        "message's own variant. Each needs that variant in the message itself.",
        "type": "object",
        "minProperties": 1,
        "additionalProperties": False,
        "properties": variants,
    }
    message = {
        "description": "A message: its variant per channel (the default, sent when no locale "
        "matches) and `locales`.",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            **variants,
            "locales": {
                "description": "Variants per locale tag (fr, en, fr-CA, pt-BR), chosen by the "
                "profile trait `locale`: fr-CA, else fr, else the default.",
                "type": "object",
                "minProperties": 1,
                "propertyNames": {"pattern": f"^{LOCALE_PATTERN}$"},
                "additionalProperties": locale,
            },
        },
        "anyOf": [{"required": [ch]} for ch in registry.names()],
    }
    return {"message": message, **{f"{ch}_variant": _variant(ch) for ch in registry.names()}}


def _variant(channel: str) -> dict[str, Any]:
    keys = sorted(registry.required_content(channel))
    spec = registry.spec(channel)
    generated = spec.generated_content
    properties: dict[str, Any] = {}
    for key in keys:
        made = " Optional: made when left out." if key in generated else ""
        properties[key] = _content(channel, key, made)
    for name, option in spec.options.items():
        properties[name] = dict(option.schema)
    required = [key for key in keys if key not in generated]
    return _object(f"The message on {channel}.", properties, required)


# --- tests ---------------------------------------------------------------------------------


def _tests() -> dict[str, Any]:
    event = _object(
        "A track event the person sends.",
        {
            "at": {"$ref": "#/$defs/offset"},
            "event": _text("The event name, e.g. Cart Abandoned."),
            "properties": {"type": "object", "description": "The event's properties."},
        },
        ["at", "event"],
    )
    at_zero = {"description": "The first event is at 0s.", "pattern": "^0+[smhd]$"}
    first_event = {"allOf": [event, {"properties": {"at": at_zero}}]}
    scenario = _object(
        "A test case: a person, the events they send, and the messages expected.",
        {
            "name": _text("What the test checks, e.g. no reminder after an order."),
            "profile": _object(
                "The person (all optional).",
                {
                    "traits": {"type": "object", "description": "Profile traits."},
                    "email": _text("E-mail address."),
                    "phone": _text('Phone number in quotes, e.g. "+33612345678".'),
                },
                [],
            ),
            "events": {
                "description": "The events, in time order; the first is at 0s.",
                "type": "array",
                "minItems": 1,
                "prefixItems": [first_event],
                "items": event,
            },
            "expect": {
                "description": "The messages expected, in any order. [] means: nothing sent.",
                "type": "array",
                "items": {"oneOf": [_expected_on(c) for c in registry.names()]},
            },
        },
        ["name", "events", "expect"],
    )
    return {
        "description": "Scenarios that `carillon journeys test` plays against this journey "
        "on a virtual clock.",
        "type": "array",
        "minItems": 1,
        "items": scenario,
    }


def _expected_on(channel: str) -> dict[str, Any]:
    keys = sorted(registry.required_content(channel))
    return _object(
        f"A message expected on {channel}.",
        {
            "channel": {"const": channel},
            "at": {
                "$ref": "#/$defs/offset",
                "description": "When, counted from the first event (any time if left out).",
            },
            "contains": {
                "description": f"Text each rendered field must contain ({', '.join(keys)}).",
                "type": "object",
                "propertyNames": {"enum": keys},
                "additionalProperties": {"type": "string", "pattern": _TEXT},
            },
        },
        ["channel"],
    )
