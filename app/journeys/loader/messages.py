"""What a send step sends: a channel and its content templates, written in the step itself or
once under `messages:`, adapted per channel and locale, and named by `send: {message}`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from functools import partial
from types import MappingProxyType
from typing import Any, cast

from app.journeys.definition import PREFERRED, SendStep, Step
from app.journeys.language.checks import (
    MESSAGE_EXAMPLE,
    SegmentChannels,
    missing_variant,
    preferred_problem,
    unknown_message,
)
from app.journeys.language.values import MESSAGE_NAME_PATTERN
from app.journeys.loader.checker import _Checker, _Field
from app.journeys.templates import (
    LOCALE_PATTERN,
    Template,
    Variant,
    Versions,
    canonical_locale,
    compile_template,
)
from app.yamlfiles.wording import allowed_hint, describe
from channels import registry
from channels.base import Option

_DIGITS = re.compile(r"[0-9]+")
_MESSAGE_NAME = re.compile(MESSAGE_NAME_PATTERN)
_LOCALE = re.compile(LOCALE_PATTERN)


def _send_step(c: _Checker, f: _Field, path: str) -> Step | None:
    if (send := c.mapping(f, "send", "e.g. send: {channel: sms, text: ...}")) is None:
        return None
    channels = list(registry.names())
    uses = c.field(send, "message")  # `send: {channel, message}`: content from `messages:`
    if (channel_field := c.field(send, "channel")) is None:
        hint = _message_channels_hint(c, uses) or f"one of: {', '.join(channels)}"
        if "channels" in send:
            hint = f"a send step sends on one channel: write one send step per channel; {hint}"
        c.error(f.key, "send is missing required key 'channel'", hint)
        return None
    if channel_field.value == PREFERRED:
        return _preferred_send(c, f, send, uses, path)
    if (channel := _channel(c, channel_field, sending=True)) is None:
        return None
    content_keys = sorted(registry.required_content(channel))
    undoable = registry.spec(channel).undo is not None
    takers = [name for name, spec in registry.specs().items() if spec.undo is not None]
    c.keys(
        send,
        f.key,
        f"send ({channel})",
        ("channel", "message") if uses else ("channel", *content_keys),
        ("remove_on_exit",) if undoable else (),
        {
            **(
                {}
                if undoable
                else {"remove_on_exit": f"remove_on_exit is only for {', '.join(takers)}"}
            ),
            **_send_hints(uses, content_keys),
        },
    )
    remove_on_exit = False
    if undoable and (rf := c.field(send, "remove_on_exit")) is not None:
        if isinstance(rf.value, bool):
            remove_on_exit = rf.value
        else:
            c.error(
                rf.at,
                f"remove_on_exit must be true or false, not {describe(rf.value)}",
                "write remove_on_exit: true or remove_on_exit: false, without quotes",
            )
    if uses is not None:
        if (versions := _sent_message(c, uses, channel)) is None:
            return None
        default = versions.default.content
        return SendStep(path, channel, default, remove_on_exit, str(uses.value), versions)
    content = _content(c, send, content_keys, "")
    if len(content) != len(content_keys):
        return None
    return SendStep(path, channel, MappingProxyType(content), remove_on_exit)


def _content(c: _Checker, given: Any, keys: Iterable[str], where: str) -> dict[str, Template]:
    """The templates of `keys` written in `given` (missing ones were reported by `c.keys`);
    `where` prefixes their names in messages (`messages.welcome.email.`)."""
    content: dict[str, Template] = {}
    for key in keys:
        compile = partial(compile_template, html=key == "html")
        if (kf := c.field(given, key)) and (template := c.compiled(kf, where + key, compile)):
            content[key] = template
            if key == "audience_id" and "{" not in kf.value and not _DIGITS.fullmatch(kf.value):
                c.error(
                    kf.at,
                    f"audience_id {kf.value!r} is not a Meta audience id",
                    'an audience id is digits only, e.g. "23850000000000001"',
                )
    return content


def _channel(c: _Checker, f: _Field, sending: bool = False) -> str | None:
    """A channel name from the channel registry, the one list of channels (a send step may
    also say `preferred`, handled before this)."""
    if (channel := c.text(f, "channel")) is None:
        return None
    if channel not in registry.names():
        channels = [*registry.names(), *([PREFERRED] if sending else [])]
        c.error(f.at, f"unknown channel {channel!r}", allowed_hint(channel, channels))
        return None
    return channel


_PREFERRED_EXAMPLE = "e.g. send: {channel: preferred, message: reminder}"


def _preferred_send(
    c: _Checker, f: _Field, send: Any, uses: _Field | None, path: str
) -> Step | None:
    """`send: {channel: preferred, message: name}`: the person's segment says which channels
    to try, in order, when the step runs; the message holds a variant per channel."""
    content_keys = {key for name in registry.names() for key in registry.required_content(name)}
    moved = "channel: preferred sends a message of messages: (a variant per channel)"
    undoable = [name for name, spec in registry.specs().items() if spec.undo is not None]
    c.keys(
        send,
        f.key,
        "send (preferred)",
        (),
        ("channel", "message"),
        {
            **_send_hints(uses, []),
            **{key: f"{moved}: put {key} under messages:" for key in content_keys},
            "remove_on_exit": "remove_on_exit needs a fixed channel: "
            f"channel: {' or '.join(undoable) or '...'}",
        },
    )
    if uses is None:
        c.error(
            f.key,
            "send (preferred) is missing required key 'message'",
            f"{moved}, {_PREFERRED_EXAMPLE}",
        )
        return None
    if (name := c.text(uses, "message")) is None:
        return None
    if name not in c.messages:
        _unknown_message(c, uses, name)
        return None
    if c.messages[name] is not None:  # a message with mistakes is reported where written
        c.preferred.append((name, uses.at))
    return SendStep(path, PREFERRED, MappingProxyType({}), False, name)


def check_preferred(c: _Checker, segments: SegmentChannels, trigger_segment: str | None) -> None:
    """Each `channel: preferred` send's message has a variant a segment's channels list."""
    for name, at in c.preferred:
        has = c.messages.get(name) or {}
        if (problem := preferred_problem(name, has, segments, trigger_segment)) is not None:
            c.error(at, *problem)


def _messages(c: _Checker, f: _Field) -> dict[str, Mapping[str, Versions]]:
    """`messages: {name: {email: …, sms: …, locales: {fr-CA: {sms: …}}}}`, each one sent by
    `send: {channel, message: name}`; also recorded in `c.messages` for the send steps."""
    if (given := c.mapping(f, "messages", MESSAGE_EXAMPLE)) is None:
        return {}
    if not given:
        c.error(f.at, "messages must define at least one message", MESSAGE_EXAMPLE)
    for name in given:
        entry = c.entry(given, name)
        if not isinstance(name, str) or not _MESSAGE_NAME.fullmatch(name):
            c.error(
                entry.key,
                f"message name {str(name)!r} is not valid",
                "use lowercase letters, digits, - and _, e.g. welcome or cart_reminder",
            )
            continue
        c.messages[name] = _message(c, entry, name)
    return {name: message for name, message in c.messages.items() if message is not None}


def _message(c: _Checker, f: _Field, name: str) -> Mapping[str, Versions] | None:
    before = len(c.issues)
    where = f"messages.{name}"
    example = "e.g. welcome: {email: {subject: ..., html: ...}, sms: {text: ...}}"
    if (given := c.mapping(f, f"message {name!r}", example)) is None:
        return None
    channels = [ch for ch in registry.names() if ch in given]
    c.keys(given, f.key, f"message {name!r}", (), (*registry.names(), "locales"))
    if not channels:
        c.error(
            f.key,
            f"message {name!r} has no content: give it at least one channel",
            f"one or more of: {', '.join(registry.names())}",
        )
    defaults = {ch: _variant(c, c.entry(given, ch), ch, f"{where}.{ch}") for ch in channels}
    locales: dict[str, dict[str, Variant | None]] = {ch: {} for ch in channels}
    if (lf := c.field(given, "locales")) is not None:
        example = "e.g. locales: {en: {sms: {text: Welcome!}}, fr-CA: {sms: {text: ...}}}"
        for tag, entry in _locale_entries(c, lf, example):
            if (versions := c.mapping(entry, f"locale {tag}", example)) is None:
                continue
            section = f"{where}.locales.{tag}"
            c.keys(versions, entry.key, f"locale {tag}", (), channels, _missing_default(versions))
            if not versions:
                c.error(entry.at, f"locale {tag} is empty", "give it the channels it changes")
            for ch in (ch for ch in channels if ch in versions):
                locales[ch][tag] = _variant(c, c.entry(versions, ch), ch, f"{section}.{ch}")
    if len(c.issues) > before:
        return None
    return MappingProxyType(
        {
            ch: Versions(variant, MappingProxyType(locales[ch]))  # type: ignore[arg-type]
            for ch, variant in defaults.items()
        }
    )


def _locale_entries(c: _Checker, f: _Field, example: str) -> Iterator[tuple[str, _Field]]:
    """The `locales:` mapping's entries whose tag is well formed (`fr`, `fr-CA`)."""
    if (given := c.mapping(f, "locales", example)) is None:
        return
    if not given:
        c.error(f.at, "locales must name at least one locale", example)
    for tag in given:
        entry = c.entry(given, tag)
        if isinstance(tag, str) and _LOCALE.fullmatch(tag):
            yield tag, entry
            continue
        fixed = canonical_locale(tag) if isinstance(tag, str) else ""
        hint = (
            f"write {fixed}"
            if _LOCALE.fullmatch(fixed)
            else "a language, then an optional region: fr, en, fr-CA, pt-BR, es-419"
        )
        c.error(entry.key, f"{str(tag)!r} is not a locale tag", hint)


def _missing_default(versions: Any) -> dict[str, str]:
    """Hints for a locale's channel that the message itself lacks: no default to fall back
    on, so people in other locales would get nothing."""
    return {
        str(ch): f"add {ch}: to the message itself too; it is sent when no locale matches"
        for ch in versions
        if ch in registry.names()
    }


def _variant(c: _Checker, f: _Field, channel: str, where: str) -> Variant | None:
    """One channel's content in one locale: its content keys (those the channel makes, such as
    an e-mail's text part, may be left out) and the options the channel declares (an SMS's
    `max_segments`), checked against literal content now."""
    keys = sorted(registry.required_content(channel))
    example = f"e.g. {channel}: {{{', '.join(f'{key}: ...' for key in keys)}}}"
    if (given := c.mapping(f, where, example)) is None:
        return None
    spec = registry.spec(channel)
    generated = spec.generated_content
    required = [key for key in keys if key not in generated]
    c.keys(given, f.key, where, required, (*sorted(generated), *spec.options))
    before = len(c.issues)
    content = _content(c, given, keys, f"{where}.")
    options = {
        name: value
        for name, option in spec.options.items()
        if (of := c.field(given, name)) is not None
        and (value := _option(c, of, name, option)) is not None
    }
    literals = {key: template.literal for key, template in content.items()}
    if spec.limit is not None and options and all(v is not None for v in literals.values()):
        refused = spec.limit(cast(dict[str, str], literals), options)
        if refused is not None:
            c.error(
                c.entry(given, refused.key).at,
                f"{where}.{refused.key}: {refused.reason}",
                refused.hint,
            )
    if len(c.issues) > before or any(key in given and key not in content for key in keys):
        return None
    return Variant(MappingProxyType(content), MappingProxyType(options))


def _option(c: _Checker, f: _Field, name: str, option: Option) -> Any:
    try:
        return option.parse(f.value)
    except ValueError as exc:
        c.error(f.at, f"{exc}, not {describe(f.value)}", option.hint)
        return None


def _sent_message(c: _Checker, f: _Field, channel: str) -> Versions | None:
    """The content of `message:` on `channel`, or None after reporting why not."""
    if (name := c.text(f, "message")) is None:
        return None
    if name not in c.messages:
        _unknown_message(c, f, name)
        return None
    if (message := c.messages[name]) is None:
        return None  # its own mistakes are reported where it is written
    if channel not in message:
        c.error(f.at, *missing_variant(name, channel, message))
        return None
    return message[channel]


def _unknown_message(c: _Checker, f: _Field, name: str) -> None:
    c.error(f.at, *unknown_message(name, c.messages))


def _message_channels_hint(c: _Checker, f: _Field | None) -> str | None:
    """For `send: {message: welcome}` without a channel: which channels the message has."""
    name = f.value if f is not None and isinstance(f.value, str) else None
    if name is None or not (message := c.messages.get(name)):
        return None
    return f"message {name!r} has {', '.join(message)}, e.g. channel: {next(iter(message))}"


def _send_hints(uses: _Field | None, content_keys: list[str]) -> dict[str, str]:
    hints = {
        "channels": "a send step sends on one channel: write one send step per channel",
        **{
            name: f"{name} goes in a message's {channel} variant, under messages:"
            for channel, spec in registry.specs().items()
            for name in spec.options
        },
    }
    if uses is not None:
        for key in content_keys:
            hints[key] = f"the content comes from the message: change {key} under messages:"
    return hints
