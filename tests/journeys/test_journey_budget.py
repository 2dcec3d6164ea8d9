"""A journey's `budget:` at load: amount, period and what a held message does, in the
currency costs are counted in, as the goal's revenue must be; each mistake refused with where
it is written and what to write instead."""

from __future__ import annotations

import textwrap

import pytest

from app.journeys.definition import BudgetPolicy
from app.journeys.language.files import Issue, JourneyInvalid, parse_journey
from app.settings import Budget
from tests.helpers import WELCOME, configure

HEAD = "id: demo\nname: Demo\ntrigger:\n  event: Signed Up\n"  # lines 1-4
SMS_STEP = "steps:\n  - send: {channel: sms, text: Hi}\n"  # lines 5-6


def issues_of(text: str) -> list[Issue]:
    with pytest.raises(JourneyInvalid) as info:
        parse_journey(HEAD + textwrap.dedent(text), "j.yaml")
    return info.value.issues


def found(text: str) -> list[tuple[int, int, str, str | None]]:
    return [(i.line, i.column, i.message, i.hint) for i in issues_of(text)]


def test_a_budget_with_what_a_held_message_does() -> None:
    journey = parse_journey(
        HEAD + SMS_STEP + "budget: {amount: 20EUR, per: day, on_budget: skip}\n", "j.yaml"
    )
    assert journey.budget == BudgetPolicy(Budget(20.0, "EUR", "day"), "skip", None)
    only_what = parse_journey(HEAD + SMS_STEP + "budget: {on_budget: wait}\n", "j.yaml")
    assert only_what.budget == BudgetPolicy(None, "wait", None)


def test_a_fallback_names_a_channel_the_sent_message_has_a_variant_for() -> None:
    text = HEAD + WELCOME + "budget:\n  on_budget: {fallback: email}\n"
    assert parse_journey(text, "j.yaml").budget == BudgetPolicy(None, "fallback", "email")


def test_a_budget_without_a_period_is_refused_at_its_key() -> None:
    [(line, column, message, hint)] = found(SMS_STEP + "budget: {amount: 20EUR}\n")
    assert (line, column) == (7, 10)
    assert message == "a budget without a period: say per what it is spent"
    assert hint is not None and "per: day" in hint


@pytest.mark.parametrize(
    ("budget", "where", "message", "hint"),
    [
        ("{amount: 20, per: day}", (7, 18), "budget.amount must be a number above zero", "20EUR"),
        ("{amount: 0EUR, per: day}", (7, 18), "budget.amount must be a number above zero", None),
        ("{amount: 20EUR, per: month}", (7, 30), "budget.per must be hour, day or week", None),
        ("{amount: 20EUR, per: dya}", (7, 30), "budget.per must be", "did you mean 'day'"),
        ("{per: day}", (7, 10), "budget.per needs an amount to spend", "amount: 20EUR"),
        ("{}", (7, 9), "budget needs an amount and a period, or on_budget", None),
        ("20EUR", (7, 9), "budget must be a mapping of keys", "per: day"),
        ("{on_budget: drop}", (7, 21), "on_budget must be skip, wait or {fallback", "fallback"),
        ("{on_budget: {fallback: fax}}", (7, 32), "unknown channel 'fax'", "allowed: email"),
        ("{amont: 20EUR, per: day}", (7, 10), "unknown key 'amont' in budget", "amount"),
    ],
)
def test_a_bad_budget_is_refused_at_its_position_with_a_hint(
    budget: str, where: tuple[int, int], message: str, hint: str | None
) -> None:
    issues = found(SMS_STEP + f"budget: {budget}\n")
    assert any(
        (line, column) == where and message in said and (hint is None or hint in (tip or ""))
        for line, column, said, tip in issues
    ), issues


def test_a_budget_in_another_currency_than_the_costs_is_refused(
    settings_env: pytest.MonkeyPatch,
) -> None:
    [(line, column, message, hint)] = found(SMS_STEP + "budget: {amount: 20USD, per: day}\n")
    assert (line, column) == (7, 18)
    assert message == (
        "budget.amount is in USD but costs are counted in EUR (CARILLON_COST_CURRENCY)"
    )
    assert hint == "write it in EUR, or set CARILLON_COST_CURRENCY=USD with prices in USD"
    configure(settings_env, cost_currency="USD")  # costs in dollars: the same budget loads
    assert parse_journey(HEAD + SMS_STEP + "budget: {amount: 20USD, per: day}\n", "j.yaml")


def test_goal_revenue_in_another_currency_than_the_costs_is_refused_at_load() -> None:
    goal = "goal: {event: Order Completed, value: event.properties.total, currency: USD}\n"
    [(line, column, message, hint)] = found(SMS_STEP + goal)
    assert (line, column) == (7, 73)
    assert message == (
        "goal revenue is in USD but costs are counted in EUR (CARILLON_COST_CURRENCY): ROI "
        "needs one currency"
    )
    assert hint == "write it in EUR, or set CARILLON_COST_CURRENCY=USD with prices in USD"


def test_a_fallback_without_a_variant_to_send_is_refused() -> None:
    issues = found(SMS_STEP + "budget:\n  on_budget: {fallback: email}\n")
    [(line, column, message, hint)] = issues
    assert (line, column) == (8, 14)
    assert message == (
        "on_budget falls back to email, but no message a send step sends has a variant for email"
    )
    assert hint is not None and "send: {channel: sms, message: welcome}" in hint


def test_a_transactional_journey_has_no_budget() -> None:
    [(line, column, message, _)] = found(
        SMS_STEP + "kind: transactional\nbudget: {on_budget: skip}\n"
    )
    assert (line, column) == (8, 1)
    assert message == "budget has no effect: a transactional journey is never held by a budget"
