"""Structured logs: one JSON object per line, carrying the ids that tie a message together.

The ids live in context variables, bound where they become known (the HTTP middleware sets the
request id, the ingest endpoint the `messageId`, routing the profile, the delivery job the
delivery, its journey instance and the triggering `messageId`), so every log line written
while handling that work carries them without being passed down by hand. One
`grep <delivery id>` (or `grep <messageId>`) then follows a message from HTTP to the provider.

Context variables are per thread and per asyncio task, so concurrent requests and worker
threads never see each other's ids.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any, TextIO

FIELDS = ("request_id", "message_id", "profile_id", "instance_id", "delivery_id")

_vars: dict[str, ContextVar[Any]] = {name: ContextVar(name, default=None) for name in FIELDS}

# Attributes every LogRecord has; anything else passed with `extra=` is written out too.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def bind(**ids: Any) -> None:
    """Set ids for the rest of the current context (use inside `scope()`, which undoes it)."""
    for name, value in ids.items():
        _vars[name].set(value)


def current() -> dict[str, Any]:
    """The ids bound in this context, leaving out those not set."""
    return {name: var.get() for name, var in _vars.items() if var.get() is not None}


@contextmanager
def scope(**ids: Any) -> Iterator[None]:
    """Bind `ids` for the `with` block; every id bound inside it is restored on exit."""
    tokens: list[tuple[ContextVar[Any], Token[Any]]] = [
        (var, var.set(var.get())) for var in _vars.values()
    ]
    bind(**ids)
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


_EMAIL = re.compile(r"([A-Za-z0-9])[A-Za-z0-9._%+-]*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")
_PHONE = re.compile(r"\+(\d{2})\d{4,11}(\d{2})\b")


def mask(text: str) -> str:
    """Log lines go to places (aggregators, tickets, screenshots) that personal data must not:
    `alice@example.com` -> `a***@example.com`, `+33612345678` -> `+33******78`. Applied to the
    whole formatted line, so a library's or a future module's line is covered too."""
    text = _EMAIL.sub(r"\1***@\2", text)
    return _PHONE.sub(lambda m: f"+{m[1]}{'*' * (len(m[0]) - 5)}{m[2]}", text)


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "msg", <bound ids>, <extra>, "exc"}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(current())
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return mask(json.dumps(entry, default=str, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    """The human format, with the bound ids appended as `key=value`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = " ".join(f"{k}={v}" for k, v in current().items())
        return mask(f"{line} [{ids}]" if ids else line)


def formatter(kind: str) -> logging.Formatter:
    if kind == "json":
        return JsonFormatter()
    if kind == "text":
        return TextFormatter()
    raise ValueError(f"CARILLON_LOG_FORMAT must be json or text, not {kind!r}")


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is when a record is emitted, as logging's own last-resort
    handler does: a command run inside another program that swaps stderr for a while (a test
    runner, a CLI runner) must not keep writing to a stream that program has since closed."""

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        """The stream is always the current stderr."""


def configure(default_format: str) -> None:
    """Root logging for a Carillon command: CARILLON_LOG_LEVEL, CARILLON_LOG_FORMAT (json|text,
    `default_format` when unset), one line per record on stderr."""
    handler = _StderrHandler()
    handler.setFormatter(formatter(os.environ.get("CARILLON_LOG_FORMAT", default_format)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    level = os.environ.get("CARILLON_LOG_LEVEL", "INFO").upper()
    root.setLevel(level)
    quiet_at_rest(level)


def quiet_at_rest(level: str) -> None:
    """APScheduler logs two INFO lines per job run, several a second at rest; its warnings
    (missed runs, job errors) still show. CARILLON_LOG_LEVEL=DEBUG brings it all back."""
    if level != "DEBUG":
        logging.getLogger("apscheduler").setLevel(logging.WARNING)


def adopt_handlers() -> None:
    """In a process whose logging someone else set up (dramatiq's worker processes), switch the
    existing root handlers to CARILLON_LOG_FORMAT (text when unset), so its lines carry the ids
    and mask addresses like every other Carillon process."""
    kind = os.environ.get("CARILLON_LOG_FORMAT", "text")
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter(kind))
