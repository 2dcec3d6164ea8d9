"""Message templates (subject, html, text, audience_id): Jinja2, compiled at load, sandboxed.

Journey files are written by marketers, not developers, so templates run in Jinja2's
immutable sandbox: no access to Python internals (`''.__class__`...) and no mutation of the
data passed in. Undefined values are strict: `{{ profile.traits.first_name }}` fails at
render time when the trait is missing, while `| default('Bonjour')` supplies a fallback, even
when a whole level (`traits`) is missing. A JSON `null` counts as missing, so the fallback
also covers a trait that was cleared. Errors name the full path (`profile.traits.first_name`)
so ops can tell what to fix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from difflib import get_close_matches
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing

VARIABLES: tuple[str, ...] = ("event", "profile")


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
    """A compiled template; `render` returns the text to send."""

    def __init__(self, source: str, template: jinja2.Template) -> None:
        self.source = source
        self._template = template

    def __repr__(self) -> str:
        return f"Template({self.source!r})"

    def render(self, context: dict[str, Any]) -> str:
        try:
            return self._template.render(
                {name: _track(value, name) for name, value in context.items()}
            )
        except SecurityError as exc:
            raise TemplateRenderError(f"blocked by the template sandbox: {exc}") from exc
        except UndefinedError as exc:
            raise TemplateRenderError(str(exc)) from exc
        except Exception as exc:  # any failure of a marketer's template is a render error
            raise TemplateRenderError(f"{type(exc).__name__}: {exc}") from exc


def compile_template(source: str, *, html: bool) -> Template:
    """Compile `source`; `html=True` turns on autoescaping (for the html part of an email)."""
    env = _HTML if html else _TEXT
    try:
        ast = env.parse(source)
        template = env.from_string(ast)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateSyntaxError(
            exc.message or "invalid template", exc.lineno or 1, hint=_filter_hint(exc)
        ) from None
    except RecursionError:
        raise TemplateSyntaxError("template is nested too deeply", 1) from None
    _check_variables(ast, source)
    return Template(source, template)


def _check_variables(ast: nodes.Template, source: str) -> None:
    """Refuse unknown top-level names at load time (`{{ profil.email }}`), not per send."""
    unknown = meta.find_undeclared_variables(ast) - set(VARIABLES)
    if not unknown:
        return
    names = [(n.lineno, n.name) for n in ast.find_all(nodes.Name) if n.name in unknown]
    lineno, name = min(names, default=(1, min(unknown)))
    close = get_close_matches(name, VARIABLES, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"templates can use {', '.join(VARIABLES)}"
    line = (source.splitlines() or [""])[lineno - 1]  # Jinja keeps no column: find the name
    found = re.search(rf"(?<![\w.]){re.escape(name)}\b", line)
    column = found.start() + 1 if found else 1
    raise TemplateSyntaxError(f"unknown variable {name!r} in template", lineno, hint, column)


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


_TEXT = ImmutableSandboxedEnvironment(undefined=_Missing, autoescape=False)
_HTML = ImmutableSandboxedEnvironment(undefined=_Missing, autoescape=True)
