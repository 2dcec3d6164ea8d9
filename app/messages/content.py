"""What a transactional send sends: a message named in a journey file, or content given inline
and checked against the channel's spec as a journey's `send` step is when its file loads.

Either way the result is the journey language's own `Versions` (content per locale), rendered
by the same code as a `send` step, so a template behaves the same here and in a journey.
"""

from __future__ import annotations

from dataclasses import dataclass
from difflib import get_close_matches
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from sqlalchemy.orm import Session

from app.errors import Unprocessable
from app.journeys import catalog
from app.journeys.templates import (
    Template,
    TemplateSyntaxError,
    Variant,
    Versions,
    compile_template,
)
from channels import registry

# `journey_id` of an inline send: not a journey id (those are [a-z0-9-]), so never mistaken
# for one in reports; its `step_path` is `inline`.
INLINE_SOURCE = ("(api)", "inline")


@dataclass(frozen=True)
class Resolved:
    """The content to render, and where it came from (the delivery's journey_id, step_path)."""

    versions: Versions
    source: tuple[str, str]


def named(session: Session, channel: str, name: str, journey_id: str | None) -> Resolved:
    """The `messages:` entry `name` of the live journey files (of `journey_id` when given),
    on `channel`; Unprocessable (422) when there is none, or more than one."""
    current = [journey for _, journey in catalog.current_journeys(session)]
    if journey_id is not None:
        current = [journey for journey in current if journey.id == journey_id]
        if not current:
            raise Unprocessable(f"journey: no journey file has the id {journey_id!r}")
    having = [journey for journey in current if name in journey.messages]
    if not having:
        known = sorted({message for journey in current for message in journey.messages})
        close = get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "name it under messages: in a journey"
        raise Unprocessable(f"message: unknown message {name!r} ({hint})")
    if len(having) > 1:
        ids = ", ".join(sorted(journey.id for journey in having))
        raise Unprocessable(
            f"message: {name!r} is a message of several journeys ({ids}): say which with journey"
        )
    journey = having[0]
    variants = journey.messages[name]
    if channel not in variants:
        raise Unprocessable(
            f"message: {name!r} of journey {journey.id} has no {channel} variant; it has "
            f"{', '.join(variants)}"
        )
    return Resolved(variants[channel], (journey.id, f"message:{name}"))


@lru_cache(maxsize=256)
def _compiled(source: str, html: bool) -> Template:
    """Compiling is most of an inline request's CPU (Jinja generates and compiles Python), and
    a shop sends the same template text with other data: compiled once per process. A
    template is immutable once compiled."""
    return compile_template(source, html=html)


def inline(channel: str, given: dict[str, Any]) -> Resolved:
    """Content written in the request: the channel's content keys (those it makes itself, such
    as an e-mail's text part, may be left out) and its options, each template compiled now."""
    spec = registry.spec(channel)
    keys = set(spec.required_content) | set(spec.optional_content)
    needed = sorted(set(spec.required_content) - set(spec.generated_content))
    unknown = sorted(key for key in given if key not in keys and key not in spec.options)
    if unknown:
        allowed = ", ".join(sorted(keys | set(spec.options)))
        raise Unprocessable(
            f"content.{unknown[0]}: not a {channel} content key (allowed: {allowed})"
        )
    missing = [key for key in needed if key not in given]
    if missing:
        raise Unprocessable(
            f"content: {channel} needs {', '.join(needed)}; missing {', '.join(missing)}"
        )
    content: dict[str, Template] = {}
    for key in sorted(key for key in given if key in keys):
        value = given[key]
        if not isinstance(value, str):
            raise Unprocessable(
                f"content.{key}: expected text (a template), not {type(value).__name__}"
            )
        try:
            content[key] = _compiled(value, key == "html")
        except TemplateSyntaxError as exc:
            hint = f" ({exc.hint})" if exc.hint else ""
            raise Unprocessable(f"content.{key}: line {exc.line}: {exc.message}{hint}") from None
    options = {}
    for name, option in spec.options.items():
        if name in given:
            try:
                options[name] = option.parse(given[name])
            except ValueError as exc:
                raise Unprocessable(f"content.{name}: {exc} ({option.hint})") from None
    variant = Variant(MappingProxyType(content), MappingProxyType(options))
    return Resolved(Versions(variant), INLINE_SOURCE)
