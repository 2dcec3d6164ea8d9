"""What each channel sends, as models made from its `ChannelSpec`: the inline send step, the
send step that names a message, the message's variant, and a test's expected message.

A channel's content keys (required, and those it makes when left out), its per-variant
options and the JSON Schema of each key are declared by the channel itself, so installing a
channel plugin adds it here with no change to this module."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, Literal, Union, cast

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    WithJsonSchema,
    create_model,
    model_validator,
)
from pydantic_core import PydanticCustomError

from app.journeys.definition import PREFERRED
from app.journeys.language.values import (
    NOT_BLANK,
    LocaleTag,
    MessageName,
    Offset,
    Text,
    template,
)
from app.journeys.templates import compile_template
from app.yamlfiles import YamlModel
from app.yamlfiles.models import refusal
from app.yamlfiles.wording import allowed_hint
from app.yamlfiles.wording import describe as describe_value
from channels.base import ChannelSpec, Option

REMOVE_ON_EXIT = (
    "Take the person out of the audience again when the trip exits (exit_when) or reaches its goal."
)


@dataclass(frozen=True)
class ChannelModels:
    """The models of one channel (each a `YamlModel` made from the channel's spec)."""

    inline: type[YamlModel]  # send: {channel, <content keys>}
    by_message: type[YamlModel]  # send: {channel, message}
    variant: type[YamlModel]  # messages.<name>.<channel>
    expected: type[YamlModel]  # tests[].expect[]
    spec: ChannelSpec


def channel_models(spec: ChannelSpec) -> ChannelModels:
    """The models of `spec`'s channel."""
    keys = sorted(spec.required_content)
    channel: Any = (Literal.__getitem__(spec.name), Field(description=spec.description))
    undo: dict[str, Any] = {}
    if spec.undo is not None:
        undo["remove_on_exit"] = (bool, Field(False, description=REMOVE_ON_EXIT))
    content: dict[str, Any] = {
        key: (content_type(spec, key), Field(description=describe(spec, key))) for key in keys
    }
    inline = create_model(
        f"send_{spec.name}",
        __base__=YamlModel,
        __doc__=f"{spec.description} Needs: {', '.join(keys)}.",
        channel=channel,
        **content,
        **undo,
    )
    by_message = create_model(
        f"send_{spec.name}_message",
        __base__=YamlModel,
        __doc__=f"{spec.description} The content comes from `messages:`.",
        channel=channel,
        message=(
            MessageName,
            Field(
                description="The name of an entry of `messages:` (top level of the file); its "
                f"{spec.name} variant is sent, in the person's locale (profile trait `locale`)."
            ),
        ),
        **undo,
    )
    by_message.mistakes = {
        key: f"the content comes from the message: change {key} under messages:" for key in keys
    }
    return ChannelModels(
        inline=inline,
        by_message=by_message,
        variant=_variant(spec, keys),
        expected=_expected(spec, keys),
        spec=spec,
    )


def send_forms(channels: dict[str, ChannelModels]) -> Any:
    """What a send step may be: a message by name on a channel or on the preferred one, or
    content written inline; picked by `channel` (and `message`), so one mistake is one error
    in the form meant, not one per form."""
    takers = [name for name, m in channels.items() if m.spec.undo is not None]
    for m in channels.values():  # which channels can take a person out again: all of them say
        if m.spec.undo is None:
            hint = f"remove_on_exit is only for {', '.join(takers) or 'no installed channel'}"
            m.inline.mistakes = {"remove_on_exit": hint}
            m.by_message.mistakes = {**m.by_message.mistakes, "remove_on_exit": hint}
    forms = [
        *(Annotated[m.by_message, Tag(f"{name} message")] for name, m in channels.items()),
        Annotated[preferred_model(channels), Tag(PREFERRED)],
        *(Annotated[m.inline, Tag(name)] for name, m in channels.items()),
    ]
    return Annotated[
        Union.__getitem__(tuple(forms)),
        Discriminator(_send_form),
        BeforeValidator(partial(_one_channel, list(channels))),
    ]


def expected_forms(channels: dict[str, ChannelModels]) -> Any:
    """A test's expected message, in the form of its channel."""
    forms = [Annotated[m.expected, Tag(name)] for name, m in channels.items()]
    return Annotated[
        Union.__getitem__(tuple(forms)),
        Discriminator(_channel_of),
        BeforeValidator(partial(known_channel, list(channels))),
    ]


def _channel_of(value: Any) -> str:
    return str(value["channel"])


def _send_form(value: Any) -> str:
    channel = str(value["channel"])
    return f"{channel} message" if "message" in value and channel != PREFERRED else channel


def known_channel(names: list[str], value: Any) -> Any:
    """A mapping (a send, an expected message) that names one channel of `names`."""
    if not isinstance(value, dict):
        raise PydanticCustomError(
            "dict_type", "not a mapping", {"hint": "e.g. {channel: sms, text: ...}"}
        )
    if "channel" not in value:
        hint = f"one of: {', '.join(names)}"
        if "channels" in value:
            hint = f"a send step sends on one channel: write one send step per channel; {hint}"
        raise PydanticCustomError("missing", "missing", {"key": "channel", "hint": hint})
    channel = value["channel"]
    if not isinstance(channel, str):
        raise PydanticCustomError("string_type", "not text", {"key": "channel"})
    if channel not in names:
        hint = allowed_hint(channel, names)
        raise refusal(f"unknown channel {channel!r}", hint, key="channel")
    return value


def _one_channel(names: list[str], value: Any) -> Any:
    """A send names one channel of `names`, or `preferred` and a message."""
    value = known_channel([*names, PREFERRED], value)
    if value["channel"] == PREFERRED and "message" not in value:
        hint = f"{_MOVED}, e.g. send: {{channel: preferred, message: reminder}}"
        raise PydanticCustomError("missing", "missing", {"key": "message", "hint": hint})
    return value


_MOVED = "channel: preferred sends a message of messages: (a variant per channel)"


def preferred_model(channels: dict[str, ChannelModels]) -> type[YamlModel]:
    """send: {channel: preferred, message}: the channel is chosen per person."""
    channel: Any = (
        Literal.__getitem__(PREFERRED),
        Field(description="Chosen per person from their segment's channels."),
    )
    model = create_model(
        "send_preferred",
        __base__=YamlModel,
        __doc__="Send a message of `messages:` on the person's preferred channel: the first of "
        "their segment's `channels` (the trigger segment's, else their first segment's that "
        "lists channels) that the message has a variant for and that they can be reached and "
        "have consent on. The channel chosen, or why none could be, is in the delivery's "
        "history.",
        channel=channel,
        message=(
            MessageName,
            Field(
                description="The name of an entry of `messages:` (top level of the file); the "
                "variant of the chosen channel is sent, in the person's locale."
            ),
        ),
    )
    undoable = [name for name, m in channels.items() if m.spec.undo is not None]
    model.mistakes = {
        **{
            key: f"{_MOVED}: put {key} under messages:"
            for m in channels.values()
            for key in m.spec.required_content
        },
        "remove_on_exit": "remove_on_exit needs a fixed channel: "
        f"channel: {' or '.join(undoable) or '...'}",
    }
    return model


def content_type(spec: ChannelSpec, key: str) -> Any:
    """A content key's type: a template, with the pattern the channel declares for it (which
    lets a template through: `^[0-9]+$|\\{`)."""
    declared = {k: v for k, v in spec.content_schema.get(key, {}).items() if k != "description"}
    pattern = declared.get("pattern")
    matches = (
        [AfterValidator(partial(_matches, re.compile(pattern), describe(spec, key)))]
        if pattern
        else []
    )
    return Annotated[
        str,
        Field(pattern=NOT_BLANK, json_schema_extra=declared or None),
        *matches,
        template(key == "html"),
    ]


def _matches(pattern: re.Pattern[str], hint: str, value: str) -> str:
    if pattern.search(value) is None:  # a JSON Schema pattern matches anywhere in the text
        raise PydanticCustomError("pattern", "{name} {value} is not valid", {"hint": hint})
    return value


def describe(spec: ChannelSpec, key: str, note: str = "") -> str:
    """A content key as the channel describes it; a template when it says nothing."""
    default = f"The message's {key}. A Jinja2 template."
    return str(spec.content_schema.get(key, {}).get("description", default)) + note


def _variant(spec: ChannelSpec, keys: list[str]) -> type[YamlModel]:
    fields: dict[str, Any] = {}
    for key in keys:
        if key in spec.generated_content:
            made = describe(spec, key, " Optional: made when left out.")
            fields[key] = (content_type(spec, key) | None, Field(None, description=made))
        else:
            fields[key] = (content_type(spec, key), Field(description=describe(spec, key)))
    for name, option in spec.options.items():
        fields[name] = (_option_type(option), Field(None))
    return create_model(
        f"{spec.name}_variant",
        __base__=YamlModel,
        __doc__=f"The message on {spec.name}.",
        __validators__=_within_limit(spec, keys) if spec.limit is not None else None,
        **fields,
    )


def _within_limit(spec: ChannelSpec, keys: list[str]) -> Any:
    """The validators of a variant whose options set a limit (an SMS's `max_segments`):
    content written as plain text is held to it now, not first when it is sent; a template's
    output is known at render time only."""

    def check(variant: YamlModel) -> YamlModel:
        options = {
            name: value for name in spec.options if (value := getattr(variant, name)) is not None
        }
        literals = {
            key: compile_template(source, html=key == "html").literal
            for key in keys
            if (source := getattr(variant, key)) is not None
        }
        if spec.limit is None or not options or None in literals.values():
            return variant
        refused = spec.limit(cast(dict[str, str], literals), options)
        if refused is not None:
            context = {"key": refused.key, "hint": refused.hint}
            raise PydanticCustomError("limit", refused.reason, context)
        return variant

    return {"_within_limit": model_validator(mode="after")(check)}


def _option_type(option: Option) -> Any:
    """An option (an SMS's `max_segments`): parsed by the channel, described by its schema."""
    return Annotated[
        Any, AfterValidator(partial(_parsed, option)), WithJsonSchema(dict(option.schema))
    ]


def _parsed(option: Option, value: Any) -> Any:
    try:
        return option.parse(value)
    except ValueError as exc:
        raise refusal(f"{exc}, not {describe_value(value)}", option.hint) from None


def _expected(spec: ChannelSpec, keys: list[str]) -> type[YamlModel]:
    field: Any = Literal.__getitem__(tuple(keys))
    channel: Any = Literal.__getitem__(spec.name)
    return create_model(
        f"expected_{spec.name}",
        __base__=YamlModel,
        __doc__=f"A message expected on {spec.name}.",
        channel=(channel, Field()),
        at=(
            Offset | None,
            Field(None, description="When, counted from the first event (any time if left out)."),
        ),
        contains=(
            dict[field, Text] | None,
            Field(
                None,
                description=f"Text each rendered field must contain ({', '.join(keys)}).",
            ),
        ),
    )


def message_model(channels: dict[str, ChannelModels]) -> type[YamlModel]:
    """A message of `messages:`: its variant per channel (the default, sent when no locale
    matches), and `locales`, which change some of those variants per locale tag."""
    names = tuple(channels)
    variants: dict[str, Any] = {
        name: (models.variant | None, Field(None)) for name, models in channels.items()
    }
    locale = create_model(
        "locale",
        __base__=extended({"minProperties": 1}),
        __doc__="This locale's variants; a channel left out falls back to the message's own "
        "variant. Each needs that variant in the message itself.",
        __validators__=_some_channel(names, "a locale"),
        **variants,
    )
    locales = Annotated[dict[LocaleTag, locale], Field(min_length=1)]  # type: ignore[valid-type]
    return create_model(
        "message",
        __base__=extended({"anyOf": [{"required": [name]} for name in names]}),
        __doc__="A message: its variant per channel (the default, sent when no locale "
        "matches) and `locales`.",
        __validators__={
            **_some_channel(names, "a message"),
            "_locales_fall_back": model_validator(mode="after")(_locales_fall_back),  # type: ignore[dict-item]
        },
        **variants,
        locales=(
            locales | None,
            Field(
                None,
                description="Variants per locale tag (fr, en, fr-CA, pt-BR), chosen by the "
                "profile trait `locale`: fr-CA, else fr, else the default.",
            ),
        ),
    )


def _locales_fall_back(message: Any) -> Any:
    """A locale's channel needs the message's own variant: people in the other locales would
    get nothing on that channel."""
    for tag, locale in (message.locales or {}).items():
        for channel in locale.model_fields_set:
            if getattr(message, channel) is None:
                raise refusal(
                    f"unknown key {channel!r} in locale {tag}",
                    f"add {channel}: to the message itself too; it is sent when no locale matches",
                    key=["locales", tag, channel],
                    on_key=True,
                )
    return message


def extended(schema: dict[str, Any]) -> type[YamlModel]:
    """A base for a model whose JSON Schema says more than its fields (a rule across them)."""
    config = ConfigDict(**YamlModel.model_config, json_schema_extra=schema)
    return type("Extended", (YamlModel,), {"model_config": config})


def _some_channel(names: tuple[str, ...], what: str) -> Any:
    """The validators of a mapping of channels (a message, a locale): one channel at least."""

    def check(model: YamlModel) -> YamlModel:
        if not any(getattr(model, name) is not None for name in names):
            raise ValueError(
                f"{what} needs at least one channel: one or more of {', '.join(names)}"
            )
        return model

    return {"_some_channel": model_validator(mode="after")(check)}
