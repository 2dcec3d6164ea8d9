"""The sandbox templates run in: Jinja2's immutable sandbox, with a cost for every way a
template can make work or text, paid from a budget per render (`app.journeys.budget`).

Jinja2's sandbox keeps templates away from Python's internals, not from memory and time:
`'x'.ljust(200000000)`, `'x' | center(200000000)`, `'%0200000000d' % 1` and
`'{:>200000000}'.format(1)` each build a 200 MB text in one step, and `~` in a loop doubles a
text until the worker dies. So here:

- an operation whose result size an argument chooses (padding, `%` and `format` widths,
  `replace`, `join`, `~`, `+`, `*`, and the `center`, `indent`, `wordwrap`, `format`,
  `replace`, `join`, `batch`, `slice`, `tojson` and `sum` filters) works the size out first
  and is refused past what the render may still build; what it built is then paid for;
- methods of text and data are allowed by name, so a method Python adds later, or one such as
  `str.translate` or `int.to_bytes`, is refused rather than trusted;
- each loop item and each call is a step, and `range(n)` is n steps; each printed value, and
  each pass of a loop over its own literal text, counts toward the characters built (so text
  captured by `{% set %}` blocks is paid for too);
- `lipsum` (unbounded placeholder text) and `urlize` (adds markup per address found) are gone.

The filters are registered with `pass_context` only so that Jinja never folds them while
compiling: they always run during a render, under its budget.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from types import BuiltinMethodType, MethodType
from typing import Any, TypeVar

from jinja2 import filters, nodes, pass_context, pass_eval_context
from jinja2.nodes import EvalContext
from jinja2.runtime import Context, LoopContext
from jinja2.sandbox import (
    ImmutableSandboxedEnvironment,
    SandboxedFormatter,
    SecurityError,
    safe_range,
)
from jinja2.visitor import NodeTransformer
from markupsafe import EscapeFormatter, Markup, soft_str

from app.journeys import budget
from app.journeys.budget import Budget, Limits

_T = TypeVar("_T", bound=Sized)

# What one render may spend: far above any real message (Gmail clips HTML past 102 KB). The
# clock is only the last resort, far enough above what the steps allow for a busy machine.
RENDER_LIMITS = Limits(
    steps=100_000, chars=2_000_000, seconds=5.0, step_unit="loop items and calls"
)
MAX_REPEAT = 10_000  # items in `'ab' * n` or `[x] * n`
MAX_JSON_INDENT = 16

# Text methods whose result is never much longer than the text (casing may triple a letter).
_TEXT_METHODS = frozenset(
    {
        *("capitalize", "casefold", "count", "endswith", "find", "index", "isalnum"),
        *("isalpha", "isascii", "isdecimal", "isdigit", "isidentifier", "islower"),
        *("isnumeric", "isprintable", "isspace", "istitle", "isupper", "lower", "lstrip"),
        *("partition", "removeprefix", "removesuffix", "rfind", "rindex", "rpartition"),
        *("rsplit", "rstrip", "split", "splitlines", "startswith", "strip", "swapcase"),
        *("title", "upper", "striptags", "unescape"),
    }
)
# Methods of the data (mappings, lists, numbers) that only read it.
_DATA_METHODS = frozenset({"get", "items", "keys", "values", "copy", "count", "index"})


def _budget() -> Budget:
    return budget.current(RENDER_LIMITS)


def _paid(predicted: int, make: Callable[[], _T]) -> _T:
    """Refuse a result the render cannot pay for before building it, then pay for it."""
    spend = _budget()
    spend.fits(predicted)
    result = make()
    spend.built(len(result))
    return result


def _int(value: Any) -> int:
    """A size argument; anything else counts as 0 here and fails in the call itself."""
    return value if isinstance(value, int) else 0


def _replaced_size(text: str, old: Any, new: Any, count: Any) -> int:
    if not isinstance(old, str) or not isinstance(new, str):
        return len(text)
    found = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * max(len(new) - len(old), 0)


def _joined_size(separator: str, items: list[Any]) -> int:
    return len(separator) * max(len(items) - 1, 0) + sum(len(soft_str(item)) for item in items)


# The size of what each of these text methods would return, from the text and its arguments.
_SIZED_TEXT_METHODS: Mapping[str, Callable[[str, tuple[Any, ...]], int]] = {
    "center": lambda text, args: max(len(text), _int(args[0]) if args else 0),
    "ljust": lambda text, args: max(len(text), _int(args[0]) if args else 0),
    "rjust": lambda text, args: max(len(text), _int(args[0]) if args else 0),
    "zfill": lambda text, args: max(len(text), _int(args[0]) if args else 0),
    "expandtabs": lambda text, args: (
        len(text) + text.count("\t") * max(_int(args[0]) if args else 8, 0)
    ),
    "replace": lambda text, args: _replaced_size(text, *(args + (None, None, -1))[:3]),
}


# --- `%` and `format` ----------------------------------------------------------------------

_PERCENT = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")
_DIGITS = re.compile(r"\d+")


def _check_width(digits: str) -> None:
    """A width or precision written in a format: the padding it asks for must be payable."""
    _budget().fits(int(digits) if len(digits) <= 9 else 10**9)


def _check_percent(text: str) -> None:
    for match in _PERCENT.finditer(text):
        for size in match.groups():
            if size == "*":
                raise SecurityError("a * width in % formatting is not allowed: write the number")
            if size:
                _check_width(size)


class _BoundedFormatter(SandboxedFormatter):
    """`str.format` fields: the format spec is final here (nested `{}` filled in)."""

    def format_field(self, value: Any, format_spec: str) -> Any:
        for digits in _DIGITS.findall(format_spec):
            _check_width(digits)
        return super().format_field(value, format_spec)


class _BoundedEscapeFormatter(_BoundedFormatter, EscapeFormatter):
    """The same for `Markup.format`, which escapes what it formats in."""


# --- filters -------------------------------------------------------------------------------


@pass_context
def _center(context: Context, value: Any, width: int = 80) -> str:
    text = soft_str(value)
    return _paid(max(len(text), _int(width)), lambda: filters.do_center(text, width))


@pass_context
def _indent(
    context: Context, s: Any, width: int | str = 4, first: bool = False, blank: bool = False
) -> str:
    text = soft_str(s)
    per_line = len(width) if isinstance(width, str) else _int(width)
    predicted = len(text) + (text.count("\n") + 1) * max(per_line, 0)
    return _paid(predicted, lambda: filters.do_indent(text, width, first, blank))


@pass_context
def _wordwrap(context: Context, s: Any, *args: Any, **kwargs: Any) -> str:
    text = soft_str(s)
    wrapstring = kwargs.get("wrapstring", args[2] if len(args) > 2 else None)
    joint = context.environment.newline_sequence if wrapstring is None else soft_str(wrapstring)
    predicted = len(text) + (len(text) + 1) * len(joint)  # at worst a line per character
    return _paid(predicted, lambda: filters.do_wordwrap(context.environment, text, *args, **kwargs))


@pass_context
def _format(context: Context, value: Any, *args: Any, **kwargs: Any) -> str:
    text = soft_str(value)
    _check_percent(text)
    result = filters.do_format(text, *args, **kwargs)
    _budget().built(len(result))
    return result


@pass_context
def _replace(context: Context, s: Any, old: Any, new: Any, count: int | None = None) -> str:
    text = soft_str(s)
    predicted = _replaced_size(text, old, new, -1 if count is None else count)
    return _paid(predicted, lambda: filters.do_replace(context.eval_ctx, s, old, new, count))


@pass_context
def _join(context: Context, value: Iterable[Any], d: str = "", attribute: Any = None) -> str:
    items = list(value)
    if attribute is not None:
        getter = filters.make_attrgetter(context.environment, attribute)
        items = [getter(item) for item in items]
    _budget().step(len(items))
    return _paid(
        _joined_size(soft_str(d), items),
        lambda: filters.sync_do_join(context.eval_ctx, items, d),
    )


@pass_context
def _batch(
    context: Context, value: Iterable[Any], linecount: int, fill_with: Any = None
) -> Iterator[list[Any]]:
    if fill_with is not None:  # the last batch is padded up to `linecount` items
        _budget().fits(_int(linecount))
    return filters.do_batch(value, linecount, fill_with)


@pass_context
def _slice(context: Context, value: Any, slices: int, fill_with: Any = None) -> Iterator[list[Any]]:
    _budget().step(max(_int(slices), 0))
    return filters.sync_do_slice(value, slices, fill_with)


@pass_context
def _tojson(context: Context, value: Any, indent: int | None = None) -> Markup:
    if indent is not None and not (isinstance(indent, int) and 0 <= indent <= MAX_JSON_INDENT):
        raise SecurityError(f"tojson's indent must be a number from 0 to {MAX_JSON_INDENT}")
    result = filters.do_tojson(context.eval_ctx, value, indent)
    _budget().built(len(result))
    return result


@pass_context
def _sum(context: Context, iterable: Iterable[Any], attribute: Any = None, start: Any = 0) -> Any:
    if not isinstance(start, int | float):  # `start=[]` would join lists, over and over
        raise SecurityError("sum adds numbers: start must be a number")
    return filters.sync_do_sum(context.environment, iterable, attribute, start)


@pass_context
def _loop_items(context: Context, iterable: Iterable[Any], own_text: int) -> Iterator[Any]:
    """What a `for` loop goes over: a step per item, and the loop's literal text per pass."""
    spend = _budget()
    for item in iterable:
        spend.step()
        spend.built(own_text)
        yield item


_LOOP_FILTER = "carillon_loop_items"  # put around every `for` loop's sequence by `bound`

_BOUNDED_FILTERS: Mapping[str, Callable[..., Any]] = {
    "center": _center,
    "indent": _indent,
    "wordwrap": _wordwrap,
    "format": _format,
    "replace": _replace,
    "join": _join,
    "batch": _batch,
    "slice": _slice,
    "tojson": _tojson,
    "sum": _sum,
    _LOOP_FILTER: _loop_items,
}


def _range(*args: int) -> range:
    numbers = safe_range(*args)
    _budget().step(len(numbers))
    return numbers


# --- the environment -----------------------------------------------------------------------


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """`mark`, when given, is put around every printed value (see `app.journeys.links`)."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, *, mark: str = "", **options: Any) -> None:
        @pass_eval_context
        def printed(eval_ctx: EvalContext, value: Any) -> str:
            """Every `{{ }}` value, paid for; with `pass_eval_context`, never folded while
            compiling, so a constant in a loop is paid for on each pass too."""
            text = soft_str(value)
            _budget().built(len(text))
            return mark + text + mark if mark else text

        super().__init__(finalize=printed, **options)
        self.filters.update(_BOUNDED_FILTERS)
        del self.filters["urlize"]
        self.globals["range"] = _range
        del self.globals["lipsum"]

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            return self._times(context, left, right)
        if operator == "**" and _power_too_big(left, right):
            raise SecurityError("the result of ** would be too large")
        if operator == "%" and isinstance(left, str):
            _check_percent(left)
            return _paid(
                0, lambda: super(BoundedSandbox, self).call_binop(context, "%", left, right)
            )
        if operator == "+" and _same_sequences(left, right):
            return _paid(
                len(left) + len(right),
                lambda: super(BoundedSandbox, self).call_binop(context, "+", left, right),
            )
        return super().call_binop(context, operator, left, right)

    def _times(self, context: Context, left: Any, right: Any) -> Any:
        """`*` is intercepted so Jinja does not fold `'a' * 10**9` while compiling either."""
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, str | list | tuple) and isinstance(times, int):
                if len(seq) * times > MAX_REPEAT:
                    raise SecurityError(
                        f"a repeated text or list may hold {MAX_REPEAT} items at most"
                    )
                return _paid(
                    len(seq) * max(times, 0),
                    lambda: super(BoundedSandbox, self).call_binop(context, "*", left, right),
                )
        if isinstance(left, int) and isinstance(right, int) and _bits(left, right) > _MAX_BITS:
            raise SecurityError("the result of * would be too large")
        return super().call_binop(context, "*", left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        """Every call is a step; text methods are allowed by name, sized ones paid for."""
        _budget().step()
        receiver = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        if isinstance(__obj, LoopContext) and args:  # `loop(children)` in a recursive loop
            args = (_loop_items(__context, args[0], 0), *args[1:])
        elif isinstance(receiver, str):
            return __self._text_call(__context, __obj, receiver, name, args, kwargs)
        elif isinstance(__obj, BuiltinMethodType) and name not in _DATA_METHODS:
            owner = f"{type(receiver).__name__}." if receiver is not None else ""
            raise SecurityError(f"{owner}{name}() is not allowed in templates")
        return super().call(__context, __obj, *args, **kwargs)

    def _text_call(
        self,
        context: Context,
        method: Any,
        text: str,
        name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        def call() -> Any:
            return super(BoundedSandbox, self).call(context, method, *args, **kwargs)

        if name == "join":
            items = list(args[0]) if args else []
            args = (items, *args[1:])
            _budget().step(len(items))
            return _paid(_joined_size(text, items), call)
        if name in _SIZED_TEXT_METHODS:
            return _paid(_SIZED_TEXT_METHODS[name](text, args), call)
        if name in _TEXT_METHODS:
            result = call()
            if isinstance(result, str | list | tuple):
                _budget().built(len(result))
            return result
        raise SecurityError(f"str.{name}() is not allowed in templates")

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """`str.format` and `format_map`, with every width and precision paid for first."""
        text = getattr(value, "__self__", None)
        if not (
            isinstance(value, MethodType | BuiltinMethodType)
            and value.__name__ in ("format", "format_map")
            and isinstance(text, str)
        ):
            return None
        formatter: _BoundedFormatter = (
            _BoundedEscapeFormatter(self, escape=text.escape)
            if isinstance(text, Markup)
            else _BoundedFormatter(self)
        )

        def formatted(args: tuple[Any, ...], mapping: Mapping[str, Any]) -> str:
            result = type(text)(formatter.vformat(text, args, mapping))
            _budget().built(len(result))
            return result

        if value.__name__ == "format_map":
            return lambda mapping: formatted((), mapping)
        return lambda *args, **kwargs: formatted(args, kwargs)


_MAX_BITS = 1024


def _bits(left: int, right: int) -> int:
    return left.bit_length() + right.bit_length()


def _power_too_big(left: Any, right: Any) -> bool:
    if isinstance(left, int) and isinstance(right, int) and right > 0:
        return abs(left) > 1 and abs(left).bit_length() * right > _MAX_BITS
    return False


def _same_sequences(left: Any, right: Any) -> bool:
    return any(isinstance(left, kind) and isinstance(right, kind) for kind in (str, list, tuple))


# --- compiled templates --------------------------------------------------------------------


class _Bounded(NodeTransformer):
    """Every `for` loop goes through `_loop_items`; every `~` through the bounded `join`."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        own = nodes.Const(_own_text(node))
        node.iter = nodes.Filter(node.iter, _LOOP_FILTER, [own], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        parts = nodes.List(node.nodes, lineno=node.lineno)
        return nodes.Filter(parts, "join", [], [], None, None, lineno=node.lineno)


def _own_text(node: nodes.Node) -> int:
    """The literal text written in a loop, not counting the loops inside it (they pay their
    own)."""
    total = 0
    for child in node.iter_child_nodes():
        if isinstance(child, nodes.TemplateData):
            total += len(child.data)
        elif not isinstance(child, nodes.For):
            total += _own_text(child)
    return total


def bound(ast: nodes.Template, environment: BoundedSandbox) -> nodes.Template:
    """`ast` with its loops and `~` paid for, ready to compile in `environment`."""
    bounded = _Bounded().visit(ast)
    bounded.set_environment(environment)
    return bounded  # type: ignore[no-any-return]
