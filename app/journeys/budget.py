"""What one template render or one condition evaluation may spend: steps, text, time.

Journey files are written by people, and much of the data they read comes from the open event
API. A loop inside a loop, a comprehension inside another, a text padded or joined many times
would each let one message or one event cost minutes of CPU or gigabytes of memory, in the
worker that every other journey shares. So each such operation draws on a budget that lives
for one render or one evaluation: the first one past a limit stops the work with `OverBudget`,
and the caller reports it as that message's or that condition's failure.

The budget in force is a context variable, so concurrent renders in threads never share one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """`steps`: units of work (`step_unit` names them for the message); `chars`: characters
    (or list items) built in all; `seconds`: wall-clock time, the last resort for a single step
    that turns out slow."""

    steps: int
    chars: int
    seconds: float
    step_unit: str


class OverBudget(Exception):
    """The work went past one of its limits; the message says which."""


class Budget:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.steps = 0
        self.chars = 0
        self._deadline = time.monotonic() + limits.seconds

    def step(self, count: int = 1) -> None:
        """Count `count` units of work. Once over, every later call fails too, so a caller
        that swallowed the first failure cannot keep going."""
        self.steps += count
        if self.steps > self.limits.steps:
            raise OverBudget(f"more than {self.limits.steps:,} {self.limits.step_unit}")
        if time.monotonic() > self._deadline:
            raise OverBudget(f"more than {self.limits.seconds:g} s of work")

    def fits(self, chars: int) -> None:
        """Refuse, before building it, a result of `chars` that the budget cannot pay for."""
        if self.chars + chars > self.limits.chars:
            raise OverBudget(
                f"{chars:,} more characters would pass the {self.limits.chars:,} allowed "
                f"({self.chars:,} built so far)"
            )

    def built(self, chars: int) -> None:
        """Pay for a result of `chars` characters or items."""
        self.fits(chars)
        self.chars += chars


_CURRENT: ContextVar[Budget | None] = ContextVar("journey_budget", default=None)


@contextmanager
def spending(limits: Limits) -> Iterator[Budget]:
    """A fresh budget for the work inside the block."""
    budget = Budget(limits)
    token = _CURRENT.set(budget)
    try:
        yield budget
    finally:
        _CURRENT.reset(token)


def current(limits: Limits) -> Budget:
    """The budget in force; outside any (a template folded while it is compiled), a fresh one
    with `limits`, so that one operation alone is still bounded."""
    return _CURRENT.get() or Budget(limits)
