"""Message templates (subject, html, text, audience_id): Jinja2, compiled at load, sandboxed.

Journey files are written by marketers, not developers, so templates run in Jinja2's
immutable sandbox: no access to Python internals (`''.__class__`...) and no mutation of the
data passed in. Undefined values are strict: `{{ profile.traits.first_name }}` fails at
render time when the trait is missing, while `| default('Bonjour')` supplies a fallback, even
when a whole level (`traits`) is missing. A JSON `null` counts as missing, so the fallback
also covers a trait that was cleared. Errors name the full path (`profile.traits.first_name`)
so ops can tell what to fix.

The sandbox is the guard at render time; `compile_template` also refuses, when the file is
loaded, what can only be an attempt to get out of it (`__class__`, `cycler.__init__.__globals__`,
`'{0.__class__}'.format(...)`, mutating methods, includes), so such a file never goes live.
A name built at render time (`'__cla' ~ 'ss__'`) still meets the sandbox.

What a template may cost (steps, text built, time) is bounded in the sandbox itself
(`template_sandbox`), and a rendered message has a size limit here. In an e-mail's HTML, the
addresses links point to are checked (`links`): when the file is loaded for those written in
it, when the message is rendered for those the data supplies.

A message's content per channel and locale (`Variant`, `Versions`) lives here too, with what
rendering adds per channel: CSS inlined into an e-mail's HTML, a text part made from the HTML
when none is written, and an SMS's segment budget.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from difflib import get_close_matches
from types import MappingProxyType
from typing import Any

import jinja2
from jinja2 import meta, nodes, sandbox
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.utils import missing

from app.journeys import budget, links
from app.journeys.template_sandbox import RENDER_LIMITS, BoundedSandbox, bound
from app.settings import get_settings
from channels import registry
from channels.base import ContentRefused

# `unsubscribe_url` only has a value in a `send` step (the e-mail adapter fills in the link).
VARIABLES: tuple[str, ...] = ("event", "profile", "unsubscribe_url")


class TemplateSyntaxError(ValueError):
    """The template cannot be compiled; `line` is 1-based inside the template text."""

    def __init__(self, message: str, line: int, hint: str | None = None, column: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.hint = hint
        self.column = column


class TemplateRenderError(Exception):
    """Rendering failed for this data: undefined value, sandbox violation, bad operation."""


class Template:
    """A compiled template; `render` returns the text to send. An html one (an e-mail's
    `html`) also has every address checked (`app.journeys.links`)."""

    def __init__(
        self,
        source: str,
        template: jinja2.Template,
        literal: str | None = None,
        html: bool = False,
        reads: frozenset[str] = frozenset(),
    ) -> None:
        self.source = source
        self._template = template
        self.literal = literal  # the text itself when the template has no tags or variables
        self.html = html
        self.reads = reads  # the VARIABLES it names: a send skips reading what none needs

    def __repr__(self) -> str:
        return f"Template({self.source!r})"

    def render(self, context: dict[str, Any], link_hosts: tuple[str, ...] = ()) -> str:
        """`link_hosts`: where links taken from data may point (html only; empty: anywhere)."""
        try:
            with budget.spending(RENDER_LIMITS):
                text = self._template.render(
                    {name: _track(value, name) for name, value in context.items()}
                )
            return links.checked(text, link_hosts) if self.html else text
        except links.UnsafeLink as exc:
            raise TemplateRenderError(exc.message) from exc
        except budget.OverBudget as exc:
            raise TemplateRenderError(f"the template went over its limits: {exc}") from exc
        except SecurityError as exc:
            raise TemplateRenderError(f"blocked by the template sandbox: {exc}") from exc
        except UndefinedError as exc:
            raise TemplateRenderError(str(exc)) from exc
        except Exception as exc:  # any failure of a marketer's template is a render error
            raise TemplateRenderError(f"{type(exc).__name__}: {exc}") from exc


def compile_template(source: str, *, html: bool) -> Template:
    """Compile `source`; `html=True` turns on autoescaping and checks the addresses written
    in it (for the html part of an email)."""
    env = _HTML if html else _TEXT
    try:
        ast = env.parse(source)
        reads = frozenset(_check_variables(ast, source))
        _check_safety(ast, source)
        if html:
            links.check_source(source, env)
        template = env.from_string(bound(ast, env))
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateSyntaxError(
            exc.message or "invalid template", exc.lineno or 1, hint=_filter_hint(exc)
        ) from None
    except links.UnsafeLink as exc:
        raise TemplateSyntaxError(exc.message, exc.line, exc.hint, exc.column) from None
    except RecursionError:
        raise TemplateSyntaxError("template is nested too deeply", 1) from None
    literal = template.render() if _is_text(ast) else None
    return Template(source, template, literal, html, reads)


def _is_text(ast: nodes.Template) -> bool:
    """No tags, no variables: the template is its own text (checked as such at load)."""
    return all(
        isinstance(node, nodes.Output)
        and all(isinstance(part, nodes.TemplateData) for part in node.nodes)
        for node in ast.body
    )


def _check_variables(ast: nodes.Template, source: str) -> set[str]:
    """Refuse unknown top-level names at load time (`{{ profil.email }}`), not per send;
    the names it uses otherwise."""
    named = meta.find_undeclared_variables(ast)
    unknown = named - set(VARIABLES)
    if not unknown:
        return named
    names = [(n.lineno, n.name) for n in ast.find_all(nodes.Name) if n.name in unknown]
    lineno, name = min(names, default=(1, min(unknown)))
    close = get_close_matches(name, VARIABLES, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"templates can use {', '.join(VARIABLES)}"
    line = (source.splitlines() or [""])[lineno - 1]  # Jinja keeps no column: find the name
    found = re.search(rf"(?<![\w.]){re.escape(name)}\b", line)
    column = found.start() + 1 if found else 1
    raise TemplateSyntaxError(f"unknown variable {name!r} in template", lineno, hint, column)


# Attributes the sandbox hides besides `_private` ones: frames, code, globals of functions.
_INTERNAL = frozenset(
    {"mro"}
    | sandbox.UNSAFE_FUNCTION_ATTRIBUTES
    | sandbox.UNSAFE_METHOD_ATTRIBUTES
    | sandbox.UNSAFE_GENERATOR_ATTRIBUTES
    | sandbox.UNSAFE_COROUTINE_ATTRIBUTES
    | sandbox.UNSAFE_ASYNC_GENERATOR_ATTRIBUTES
)
# Methods that change a list, mapping or set in place: the data a template reads is read-only.
_MUTATORS = frozenset(
    {
        *("append", "extend", "insert", "pop", "remove", "reverse", "sort", "clear"),
        *("popitem", "setdefault", "update", "add", "discard", "difference_update"),
        *("intersection_update", "symmetric_difference_update"),
    }
)
_SANDBOX_HINT = "templates read event and profile values only, e.g. {{ profile.traits.city }}"


def _check_safety(ast: nodes.Template, source: str) -> None:
    """Refuse at load what can only be a way out of the sandbox or a change to the data.

    The sandbox would stop each of these at render time, for every person; refusing them at
    load time keeps such a file from going live at all."""
    problems = []
    for node in ast.find_all(nodes.Node):
        if (found := _unsafe(node)) is not None:
            message, needle = found
            lineno = node.lineno or 1
            line = (source.splitlines() or [""])[lineno - 1]
            problems.append((lineno, line.find(needle) + 1 if needle in line else 1, message))
    if problems:  # the first one in the text (the tree lists `a.b.c` from the outside in)
        lineno, column, message = min(problems)
        raise TemplateSyntaxError(message, lineno, _SANDBOX_HINT, column)


def _unsafe(node: nodes.Node) -> tuple[str, str] | None:
    """(what is wrong, the text to point at), or None."""
    if isinstance(node, nodes.Include | nodes.Import | nodes.FromImport | nodes.Extends):
        return "templates cannot include, import or extend other templates", "{%"
    if isinstance(node, nodes.Getattr) and _internal(node.attr, private=True):
        return _internal_message(node.attr), node.attr
    if isinstance(node, nodes.Getitem) and (name := _const_text(node.arg, private=True)):
        return _internal_message(name), name
    if isinstance(node, nodes.Filter | nodes.Test | nodes.Call):
        for arg in [*node.args, *(kw.value for kw in node.kwargs)]:
            # `attr('__class__')`, `map(attribute='__globals__')`
            if name := _const_text(arg):
                return _internal_message(name), name
    if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr):
        method, owner = node.node.attr, node.node.node
        if method in _MUTATORS:
            return f"templates cannot change data: {method}() is not allowed", method
        if method in ("format", "format_map") and isinstance(owner, nodes.Const):
            fields = [f for _, f, _, _ in string.Formatter().parse(str(owner.value)) if f]
            parts = (p for f in fields for p in re.split(r"[.\[\]]", f))
            if any(_internal(p, private=True) for p in parts):
                return "a format string cannot reach attributes starting with _", method
    return None


def _const_text(node: nodes.Node, private: bool = False) -> str | None:
    """The literal text of `node` if it names something internal (`'a.__globals__'`)."""
    text = node.value if isinstance(node, nodes.Const) else None
    if isinstance(text, str) and any(_internal(part, private) for part in text.split(".")):
        return text
    return None


def _internal_message(name: str) -> str:
    return f"{name!r} is internal to Python: templates cannot use it"


def _internal(name: str, private: bool = False) -> bool:
    """`__class__`-like names, and the sandbox's unsafe ones; `private` also counts `_x`
    (fine as text, e.g. `replace('_', ' ')`, but never an attribute a template needs)."""
    return name.startswith("_" if private else "__") or name in _INTERNAL


def _filter_hint(exc: jinja2.TemplateSyntaxError) -> str | None:
    message = exc.message or ""
    if message.startswith("No filter named "):
        name = message.removeprefix("No filter named ").strip(".'\"")
        close = get_close_matches(name, list(_TEXT.filters), n=1)
        return f"did you mean {close[0]!r}?" if close else None
    return None


# --- undefined values that know their path ------------------------------------------------


class _Dict(dict[str, Any]):
    """A context mapping that remembers where it sits (`profile.traits`) for error messages."""

    __slots__ = ("_path",)
    _path: str


class _List(list[Any]):
    __slots__ = ("_path",)
    _path: str


def _track(value: Any, path: str) -> Any:
    """Copy JSON-like data into path-aware containers; `null` values become missing."""
    if isinstance(value, Mapping):
        tracked = _Dict(
            (str(k), _track(v, f"{path}.{k}")) for k, v in value.items() if v is not None
        )
        tracked._path = path
        return tracked
    if isinstance(value, list | tuple):
        items = _List(_track(v, f"{path}[{i}]") for i, v in enumerate(value))
        items._path = path
        return items
    return value


class _Missing(jinja2.StrictUndefined):
    """Strict, but chainable: `profile.traits.first_name | default('x')` works even without
    `traits`, and printing it says `profile.traits.first_name is undefined`."""

    __slots__ = ()

    @property
    def _full_path(self) -> str:
        obj, name = self._undefined_obj, self._undefined_name
        base = getattr(obj, "_path", None) if obj is not missing else None
        if base is None:
            return str(name)
        return f"{base}.{name}" if isinstance(name, str) else f"{base}[{name!r}]"

    @property
    def _undefined_message(self) -> str:
        if self._undefined_hint:
            return self._undefined_hint
        return (
            f"{self._full_path} is undefined (use | default('...') in the template "
            f"to give a fallback)"
        )

    def _chain(self, name: str) -> _Missing:
        if self._undefined_hint or self._undefined_exception is not UndefinedError:
            return self  # keep the first failure (e.g. a sandbox violation)
        return _Missing(name=f"{self._full_path}{name}")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # dunder probes and our own slots are not data
            raise AttributeError(name)
        return self._chain(f".{name}")

    def __getitem__(self, key: Any) -> Any:
        return self._chain(f".{key}" if isinstance(key, str) else f"[{key!r}]")


_TEXT = BoundedSandbox(undefined=_Missing, autoescape=False)
_HTML = BoundedSandbox(undefined=_Missing, autoescape=True, mark=links.DATA)


# --- a message's content per channel and locale ---------------------------------------------

# A locale tag as written in a journey: language, optional script, optional region
# (`fr`, `fr-CA`, `zh-Hant-TW`, `es-419`).
LOCALE_PATTERN = r"[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?"


@dataclass(frozen=True)
class Variant:
    """One channel's content in one locale, with the step options its channel declares
    (`max_segments` bounds an SMS's billed segments)."""

    content: Mapping[str, Template]
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Versions:
    """One channel's content: the default variant, and one per locale tag (`fr`, `fr-CA`)."""

    default: Variant
    locales: Mapping[str, Variant] = field(default_factory=lambda: MappingProxyType({}))

    def pick(self, locale: object) -> tuple[str | None, Variant]:
        """The variant for a profile's `locale` trait: `fr-CA`, else `fr`, else the default
        (tag None). Case and `_` are forgiven (`fr_ca`), as shops send them in every form."""
        for tag in fallbacks(locale):
            if tag in self.locales:
                return tag, self.locales[tag]
        return None, self.default

    def reads(self, name: str) -> bool:
        """Whether a template of any locale names the variable `name`, so a sender that has
        it to read (a person's segments) knows before picking the locale."""
        variants = (self.default, *self.locales.values())
        return any(name in t.reads for variant in variants for t in variant.content.values())


def canonical_locale(tag: str) -> str:
    """`fr_ca` → `fr-CA`, `zh-hant-tw` → `zh-Hant-TW`; `fr_FR.UTF-8` (POSIX) → `fr-FR`."""
    parts = [p for p in re.split(r"[-_]", re.split(r"[.@]", tag.strip())[0]) if p]
    if not parts:
        return ""
    shaped = [parts[0].lower()]
    for part in parts[1:]:
        if len(part) == 4 and part.isalpha():
            shaped.append(part.title())  # a script
        elif len(part) == 2 or (len(part) == 3 and part.isdigit()):
            shaped.append(part.upper())  # a region
        else:
            shaped.append(part.lower())
    return "-".join(shaped)


def fallbacks(locale: object) -> list[str]:
    """`fr-CA` → [`fr-CA`, `fr`]: the tags to try, most specific first."""
    if not isinstance(locale, str) or not (tag := canonical_locale(locale)):
        return []
    parts = tag.split("-")
    return ["-".join(parts[:size]) for size in range(len(parts), 0, -1)]


# What one message may hold once rendered, all its parts together (Gmail already clips an
# e-mail's HTML past 102 KB; SendGrid takes 30 MB in all).
MAX_MESSAGE_CHARS = 1_000_000


def render_variant(channel: str, variant: Variant, variables: dict[str, Any]) -> dict[str, str]:
    """The content to send: every template rendered, then what the channel needs added;
    links taken from data may only point to `CARILLON_LINK_HOSTS` when it is set.

    Raises `TemplateRenderError` when a template fails, a link is refused, the message is
    too large or an SMS is over its budget, so the delivery is recorded as failed with that
    reason and nothing is sent."""
    hosts = links.link_hosts(get_settings().link_hosts)
    content = {key: template.render(variables, hosts) for key, template in variant.content.items()}
    spec = registry.spec(channel)
    try:
        if spec.finish is not None:
            content = spec.finish(content)
    except ContentRefused as exc:
        raise TemplateRenderError(str(exc)) from None
    size = sum(len(part) for part in content.values())
    if size > MAX_MESSAGE_CHARS:
        raise TemplateRenderError(
            f"the message is {size:,} characters long; at most {MAX_MESSAGE_CHARS:,} may be sent"
        )
    refused = spec.limit(content, variant.options) if spec.limit is not None else None
    if refused is not None:
        raise TemplateRenderError(refused.reason)
    return content
