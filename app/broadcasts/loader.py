"""Broadcast files → definitions, or every problem as `file:line:column (hint: ...)`.

Each file is validated by its model (`language`); then what needs the system around it,
with the same positions: the message named by `send` and its variant on the channel, the
segment (against the segments the system runs), a time already past, a rate above the
channel's CARILLON_RATE_LIMITS, two files of one id. `messages:` is the journey language's
own: its models check the templates (a mistake points at its character, as in a journey) and
its compiler makes the versions sent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.broadcasts.language import (
    AT_HINT,
    LATEST_OFFSET,
    RATE_HINT,
    broadcast_model,
    moment,
    per_second,
    written_time,
)
from app.journeys.language.compile import compile_messages
from app.journeys.templates import Versions
from app.settings import Limit
from app.yamlfiles import FileInvalid, Issue, parse_yaml, read_text, validate_yaml
from app.yamlfiles.positions import node_position
from app.yamlfiles.wording import closest_hint


@dataclass(frozen=True)
class SentMessage:
    """A message of the file's `messages:`, on one channel."""

    channel: str
    name: str
    versions: Versions


@dataclass(frozen=True)
class BroadcastDefinition:
    """A valid broadcast file, compiled."""

    id: str
    name: str
    file: str
    source: str
    checksum: str
    segment: str | None  # audience: the segment's members, or
    consent_channel: str | None  # everyone with consent for this channel
    at: datetime  # naive: each person's local time
    rate_per_second: float | None
    # What is sent: a message, or a trip of a journey.
    message: SentMessage | None
    journey: str | None

    @property
    def audience(self) -> str:
        if self.segment is not None:
            return f"segment {self.segment}"
        return f"everyone with {self.consent_channel} consent"

    @property
    def sends(self) -> str:
        if self.message is not None:
            return f"{self.message.channel} message {self.message.name}"
        return f"journey {self.journey}"


@dataclass(frozen=True)
class Known:
    """What the checks beyond the file compare it with; None leaves that check out."""

    segments: frozenset[str] | None = None
    journeys: frozenset[str] | None = None  # those people may enter (enabled)
    now: datetime | None = None
    limits: Mapping[str, Limit] = field(default_factory=dict)
    started: frozenset[str] = frozenset()  # a started broadcast's time may be past


def earliest(at: datetime) -> datetime:
    """The first instant anybody's clock shows `at` (itself when it has an offset)."""
    if at.tzinfo is not None:
        return at.astimezone(UTC)
    return at.replace(tzinfo=UTC) - LATEST_OFFSET


def parse_broadcast(text: str, file: str) -> BroadcastDefinition:
    """One file, checked on its own (what a started broadcast is read back from)."""
    definition, issues = _parse(text, file, Known())
    if definition is None:
        raise FileInvalid(issues)
    return definition


def _parse(text: str, file: str, known: Known) -> tuple[BroadcastDefinition | None, list[Issue]]:
    try:
        model: Any = validate_yaml(text, file, broadcast_model(), "the broadcast")
    except FileInvalid as exc:
        # Still tell what the running system finds wrong with the values that are readable,
        # so one run shows every fix; a value the model already refused is not told twice.
        try:
            document = parse_yaml(text, file)
        except FileInvalid:
            return None, exc.issues
        told = {(issue.line, issue.column) for issue in exc.issues}
        more = [i for i in _against_system(document, file, known) if (i.line, i.column) not in told]
        return None, _ordered(exc.issues + more)
    document = parse_yaml(text, file)
    messages = compile_messages(model.messages)
    issues = _against_system(document, file, known)
    send = model.send
    versions = messages.get(send.message, {}).get(send.channel)
    if send.journey is None and send.message not in (model.messages or {}):
        hint = closest_hint(send.message, list(model.messages or {}), "name it under messages:")
        at = node_position(document, ["send", "message"])
        issues.append(Issue(file, *at, f"send.message: unknown message {send.message!r}", hint))
    elif send.journey is None and send.message in messages and versions is None:
        has = ", ".join(messages[send.message])
        issues.append(
            Issue(
                file,
                *node_position(document, ["send", "channel"]),
                f"send.channel: message {send.message!r} has no {send.channel} variant",
                f"it has {has}: add `{send.channel}:` to it, or send on one of those",
            )
        )
    if issues or (send.journey is None and versions is None):
        return None, _ordered(issues)
    return (
        BroadcastDefinition(
            id=model.id,
            name=model.name,
            file=file,
            source=text,
            checksum=hashlib.sha256(text.encode("utf-8")).hexdigest(),
            segment=model.audience.segment,
            consent_channel=model.audience.channel_consent,
            at=moment(model.at),
            rate_per_second=per_second(model.rate) if model.rate is not None else None,
            message=SentMessage(send.channel, send.message, versions) if versions else None,
            journey=send.journey,
        ),
        [],
    )


def _ordered(issues: list[Issue]) -> list[Issue]:
    return sorted(issues, key=lambda i: (i.line, i.column, i.message))


def _against_system(document: Any, file: str, known: Known) -> list[Issue]:
    """What the running system finds wrong: an unknown segment or journey, a time already
    past, a rate over the channel's limit. Reads the document's values as written, so it
    works on a file the model refused too (a value it cannot read is the model's to tell)."""
    if not isinstance(document, dict):
        return []
    issues: list[Issue] = []

    def issue(path: list[str | int], message: str, hint: str) -> None:
        issues.append(Issue(file, *node_position(document, path), message, hint))

    def named(key: str, within: Any) -> str | None:
        value = within.get(key) if isinstance(within, dict) else None
        return str(value) if isinstance(value, str) else None

    audience, send = document.get("audience"), document.get("send")
    segment = named("segment", audience)
    if segment is not None and known.segments is not None and segment not in known.segments:
        hint = closest_hint(
            segment,
            sorted(known.segments),
            "carillon segments list shows the segments and stages the system runs",
        )
        issue(["audience", "segment"], f"audience.segment: unknown segment {segment!r}", hint)
    journey = named("journey", send)
    if journey is not None and known.journeys is not None and journey not in known.journeys:
        hint = closest_hint(
            journey,
            sorted(known.journeys),
            "carillon journeys list shows the journeys the system runs (live)",
        )
        issue(["send", "journey"], f"send.journey: no live journey {journey!r}", hint)
    written = written_time(document.get("at"))
    try:
        at = moment(written) if isinstance(written, str) else None
    except ValueError:
        at = None
    started = str(document.get("id")) in known.started
    if at is not None and known.now is not None and not started and earliest(at) <= known.now:
        late = " for some people (it is each person's local time)" if at.tzinfo is None else ""
        issue(["at"], f"at: {written} is in the past{late}", _past_hint(at, known.now))
    rate, channel = named("rate", document), named("channel", send)
    limit = known.limits.get(channel) if channel is not None else None
    try:
        fast = rate is not None and limit is not None and per_second(rate) > limit.per_second
    except ValueError:
        fast = False
    if fast and limit is not None:
        issue(
            ["rate"],
            f"rate: {rate} is over the {channel} provider limit {limit.text} "
            "(CARILLON_RATE_LIMITS)",
            f"write at most {limit.text}, or leave rate out to send as fast as it allows; "
            + RATE_HINT,
        )
    return issues


def _past_hint(at: datetime, now: datetime) -> str:
    if at.tzinfo is None:
        return (
            f"write a time still to come everywhere: after {(now + LATEST_OFFSET):%Y-%m-%dT%H:%M} "
            "(local times start 14 hours ahead of UTC), or add an offset to send at one instant"
        )
    return f"write a time after now ({now:%Y-%m-%dT%H:%M}Z); {AT_HINT}"


def files_of(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
    return [path]


def load_path(path: Path, known: Known) -> tuple[list[BroadcastDefinition], list[Issue]]:
    """Every file of the directory (or the one file), and every problem of any of them; a
    second file of an id already used is a problem too."""
    found: list[BroadcastDefinition] = []
    issues: list[Issue] = []
    owners: dict[str, str] = {}
    for file in files_of(path):
        try:
            text = read_text(file)
        except FileInvalid as exc:
            issues += exc.issues
            continue
        definition, problems = _parse(text, str(file), known)
        issues += problems
        if definition is None:
            continue
        if definition.id in owners:
            at = node_position(parse_yaml(text, str(file)), ["id"])
            issues.append(
                Issue(
                    str(file),
                    *at,
                    f"broadcast id {definition.id!r} is already used by {owners[definition.id]}",
                    "give each broadcast its own id",
                )
            )
            continue
        owners[definition.id] = str(file)
        found.append(definition)
    return found, issues


def find(
    path: Path, broadcast_id: str, known: Known
) -> tuple[BroadcastDefinition | None, list[Issue]]:
    """The file of `broadcast_id` in the directory, checked; the problems of that file only
    (another file's mistakes do not hold this one back)."""
    definitions, issues = load_path(path, known)
    for definition in definitions:
        if definition.id == broadcast_id:
            return definition, []
    mine = [issue for issue in issues if _declares(issue.file, broadcast_id)]
    return None, mine


def _declares(file: str, broadcast_id: str) -> bool:
    """Whether a file (rejected) says `id: <broadcast_id>`, so its problems are this one's."""
    try:
        document = parse_yaml(read_text(Path(file)), file)
    except FileInvalid:
        return Path(file).stem == broadcast_id
    return isinstance(document, dict) and str(document.get("id")) == broadcast_id
