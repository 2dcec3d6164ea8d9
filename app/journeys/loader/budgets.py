"""`budget:` — what a journey may spend per period and what its messages do when a budget holds
them; and the one currency every amount of a journey is in (its budget, its goal's revenue):
the one costs are counted in, or spend and ROI would add up euros and dollars."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from app.journeys.definition import BudgetPolicy, SendStep, Step, child_lists
from app.journeys.language.checks import budget_problem, fallback_problem
from app.journeys.loader.checker import _Checker, _Field
from app.journeys.loader.messages import _channel
from app.journeys.templates import Versions
from app.settings import BUDGET_PERIODS, Budget, parse_money
from app.yamlfiles.wording import allowed_hint, describe

ON_BUDGET = ("skip", "wait")
_EXAMPLE = "e.g. budget: {amount: 20EUR, per: day, on_budget: skip}"
_ON_BUDGET_HINT = "skip, wait, or a channel to send on instead: on_budget: {fallback: email}"


def _budget(c: _Checker, f: _Field) -> BudgetPolicy | None:
    if (given := c.mapping(f, "budget", _EXAMPLE)) is None:
        return None
    before = len(c.issues)
    c.keys(given, f.at, "budget", (), ("amount", "per", "on_budget"))
    amount, per, on = (c.field(given, key) for key in ("amount", "per", "on_budget"))
    if amount is None and per is None and on is None:
        c.error(f.at, "budget needs an amount and a period, or on_budget", _EXAMPLE)
    elif amount is not None and per is None:
        hint = "add per: day (or hour, week): a budget is spent per period"
        c.error(amount.key, "a budget without a period: say per what it is spent", hint)
    elif per is not None and amount is None:
        c.error(per.key, "budget.per needs an amount to spend", _EXAMPLE)
    limit = _limit(c, amount, per) if amount is not None and per is not None else None
    on_budget, fallback = _on_budget(c, on) if on is not None else (None, None)
    if len(c.issues) > before:
        return None
    return BudgetPolicy(limit, on_budget, fallback)


def _limit(c: _Checker, amount: _Field, per: _Field) -> Budget | None:
    money = parse_money(amount.value) if isinstance(amount.value, str) else None
    if money is None:
        c.error(
            amount.at,
            f"budget.amount must be a number above zero and a currency code, not "
            f"{describe(amount.value)}",
            _EXAMPLE,
        )
    elif (problem := budget_problem(money[1])) is not None:
        c.error(amount.at, *problem)
        money = None
    period = per.value if isinstance(per.value, str) and per.value in BUDGET_PERIODS else None
    if period is None:
        periods = list(BUDGET_PERIODS)
        close = allowed_hint(str(per.value), periods) if isinstance(per.value, str) else None
        c.error(
            per.at,
            f"budget.per must be {', '.join(periods[:-1])} or {periods[-1]}, not "
            f"{describe(per.value)}",
            close or "periods start at 00:00 UTC, a week on Monday",
        )
    return Budget(*money, period) if money is not None and period is not None else None


def _on_budget(c: _Checker, f: _Field) -> tuple[Any, str | None]:
    if isinstance(f.value, str) and f.value in ON_BUDGET:
        return f.value, None
    if isinstance(f.value, dict) and list(f.value) == ["fallback"]:
        channel = _channel(c, c.entry(f.value, "fallback"))
        return ("fallback", channel) if channel is not None else (None, None)
    what = f"on_budget must be skip, wait or {{fallback: <channel>}}, not {describe(f.value)}"
    c.error(f.at, what, _ON_BUDGET_HINT)
    return None, None


def check_fallback(
    c: _Checker,
    f: _Field,
    policy: BudgetPolicy,
    steps: Iterable[Step],
    messages: Mapping[str, Mapping[str, Versions]],
) -> None:
    """A fallback needs a message to send: a send step's `message:` with a variant for it."""
    if policy.fallback is None:
        return

    def sends(listed: Iterable[Step]) -> Iterable[SendStep]:
        for step in listed:
            if isinstance(step, SendStep):
                yield step
            for arm in child_lists(step):
                yield from sends(arm)

    named = [step.message for step in sends(steps) if step.message is not None]
    sent = [messages.get(name, {}) for name in named]
    if (problem := fallback_problem(policy.fallback, sent)) is not None:
        on = c.field(f.value, "on_budget")
        c.error(on.at if on is not None else f.at, *problem)
