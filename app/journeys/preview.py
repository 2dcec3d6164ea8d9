"""`carillon templates preview`: every variant of one send step, rendered for one person.

A marketer reviewing a campaign wants to see each channel and each locale side by side, with
what the provider will bill for an SMS, before anyone receives it. Rendering goes through the
same `render_variant` as a real send (CSS inlining, text part, segment budget), so what the
preview shows is what would go out; nothing is stored and nothing is sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app import unsubscribe
from app.journeys.definition import Journey, SendStep
from app.journeys.language.files import JourneyInvalid, load_directory, parse_journey
from app.journeys.templates import TemplateRenderError, Versions, render_variant
from channels import registry


class PreviewError(Exception):
    """Bad input: no such file, journey or step, or unreadable JSON. Nothing was rendered."""


@dataclass(frozen=True)
class Rendered:
    """One variant: `locale` None is the default; `content` None when rendering failed
    (`error` says why). `chosen`: the variant this step sends to this person."""

    channel: str
    locale: str | None
    content: dict[str, str] | None
    error: str | None
    chosen: bool
    size: str | None = None  # what the channel says of it (an SMS: encoding and segments)


def load_journey(target: str, journeys_dir: Path) -> Journey:
    """A journey file, or the id of a journey in the journeys directory."""
    path = Path(target)
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PreviewError(f"{path}: cannot read the file: {exc}") from None
        return parse_journey(text, str(path))  # JourneyInvalid: the file's own issues
    journeys, issues = load_directory(journeys_dir)
    for journey in journeys:
        if journey.id == target:
            return journey
    if any(Path(issue.file).stem == target for issue in issues):
        raise JourneyInvalid([i for i in issues if Path(i.file).stem == target])
    known = ", ".join(sorted(j.id for j in journeys)) or "none"
    raise PreviewError(
        f"{target!r} is neither a file nor a journey id in {journeys_dir} (journeys: {known})"
    )


def read_json(path: Path | None, what: str) -> dict[str, Any]:
    """A JSON object from a file (`{}` without one)."""
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PreviewError(f"{path}: cannot read the {what}: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PreviewError(f"{path}: the {what} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PreviewError(f"{path}: the {what} must be a JSON object, not {type(data).__name__}")
    return data


def send_step(journey: Journey, path: str) -> SendStep:
    """The send step at `path`; the error lists the journey's send steps."""
    sends = [step.path for step in journey.all_steps() if isinstance(step, SendStep)]
    listed = ", ".join(sends) or "none"
    try:
        step = journey.step(path)
    except KeyError:
        raise PreviewError(
            f"journey {journey.id} has no step {path!r}; its send steps are: {listed}"
        ) from None
    if not isinstance(step, SendStep):
        kind = type(step).__name__.removesuffix("Step").lower()
        raise PreviewError(f"step {path} is a {kind} step, not a send; send steps: {listed}")
    return step


def preview(
    journey: Journey, step: SendStep, profile: dict[str, Any], event: dict[str, Any]
) -> list[Rendered]:
    """Every variant of the step: its channel first, then the message's other channels;
    within a channel the default, then each locale as written."""
    person = {"id": "preview", "traits": {}, **profile}
    variables = {"event": event, "profile": person, "unsubscribe_url": unsubscribe.PLACEHOLDER}
    # A preferred send's channel is chosen per person when it runs: every variant is shown.
    channels: dict[str, Versions] = {} if step.preferred else {step.channel: step.localized()}
    if step.message is not None:
        channels.update(journey.messages[step.message])  # the step's channel stays first
    chosen = step.localized().pick((person.get("traits") or {}).get("locale"))[0]
    rendered = []
    for channel, versions in channels.items():
        for locale, variant in [(None, versions.default), *versions.locales.items()]:
            picked = channel == step.channel and locale == chosen
            try:
                content = render_variant(channel, variant, variables)
            except TemplateRenderError as exc:
                rendered.append(Rendered(channel, locale, None, str(exc), picked))
                continue
            describe = registry.spec(channel).describe
            size = describe(content) if describe is not None else None
            rendered.append(Rendered(channel, locale, content, None, picked, size))
    return rendered


_ORDER = {"subject": 0, "text": 1, "html": 2}  # an e-mail reads top-down: subject first


def format_preview(journey: Journey, step: SendStep, rendered: list[Rendered]) -> str:
    """The variants as text, one block each."""
    source = f", message {step.message}" if step.message else ""
    lines = [f"journey {journey.id}, step {step.path}: send on {step.channel}{source}"]
    for item in rendered:
        label = f"{item.channel} · {item.locale or 'default'}"
        if item.chosen:
            label += "  (what this person gets)"
        lines += ["", f"== {label}"]
        if item.content is None:
            lines.append(f"FAILED: {item.error}")
            continue
        if item.size is not None:
            lines.append(item.size)
        for key, value in sorted(item.content.items(), key=lambda kv: (_ORDER.get(kv[0], 9), kv)):
            body = value.rstrip("\n").splitlines() or [""]
            lines += [f"{key}: {body[0]}"] if len(body) == 1 else [f"{key}:", *body]
    return "\n".join(lines)
