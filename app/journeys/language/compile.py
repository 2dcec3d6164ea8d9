"""A validated journey document compiled to the runtime's definitions (`app.journeys.
definition`): CEL conditions and templates compiled, durations parsed, steps given their
paths, split arms their default names, messages their versions per locale. The runtime keeps
its plain frozen dataclasses; only this module knows both sides."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import time, timedelta
from types import MappingProxyType
from typing import Any

from app.journeys.conditions import Condition, compile_condition
from app.journeys.definition import (
    PREFERRED,
    BranchArm,
    BranchStep,
    BudgetPolicy,
    Cap,
    ExitStep,
    ExitWhen,
    ExpectedSend,
    Goal,
    Journey,
    ReEntry,
    Scenario,
    ScenarioEvent,
    SendStep,
    SplitArm,
    SplitStep,
    Step,
    Trigger,
    UpdateProfileStep,
    WaitForStep,
    WaitStep,
    WaitUntilStep,
    WinnerRule,
    parse_cap,
    parse_duration,
)
from app.journeys.language.rules import SegmentRule
from app.journeys.language.steps import HOLDOUT, arm_names, threshold
from app.journeys.templates import Template, Variant, Versions, compile_template
from app.settings import Budget, parse_money
from channels import registry


def compile_journey(document: Any, text: str, file: str) -> Journey:
    """The runtime's `Journey` for a document the language's models validated."""
    messages = compile_messages(document.messages)
    trigger = document.trigger
    exit_when = document.exit_when
    return Journey(
        id=document.id,
        name=document.name,
        enabled=document.enabled,
        trigger=(
            Trigger("", _condition(trigger.when), trigger.segment, trigger.on)
            if isinstance(trigger, SegmentRule)
            else Trigger(trigger.event, _condition(trigger.when))
        ),
        exit_when=ExitWhen(exit_when.event, _condition(exit_when.when)) if exit_when else None,
        re_entry=_re_entry(document.re_entry),
        steps=_steps(document.steps, "", messages),
        source=text,
        checksum=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        file=file,
        goal=_goal(document.goal) if document.goal else None,
        tests=tuple(_scenario(test) for test in document.tests or ()),
        messages=MappingProxyType(messages),
        kind=document.kind,
        priority=document.priority,
        on_cap=document.on_cap,
        caps=MappingProxyType(
            {channel: _caps(rules) for channel, rules in (document.caps or {}).items()}
        ),
        budget=_budget(document.budget) if document.budget else None,
    )


def _budget(budget: Any) -> BudgetPolicy:
    money = parse_money(budget.amount) if budget.amount else None
    limit = Budget(*money, budget.per) if money and budget.per else None
    on_budget = budget.on_budget
    if on_budget is None:
        return BudgetPolicy(limit)
    if on_budget in ("skip", "wait"):
        return BudgetPolicy(limit, "skip" if on_budget == "skip" else "wait")
    return BudgetPolicy(limit, "fallback", on_budget.fallback)


def _caps(rules: str | list[str]) -> tuple[Cap, ...]:
    """`1/24h` or `["1/24h", "3/7d"]`; `[]` leaves the channel uncapped."""
    return tuple(parse_cap(rule) for rule in ([rules] if isinstance(rules, str) else rules))


def _condition(source: str | None) -> Condition | None:
    return compile_condition(source) if source is not None else None


def _re_entry(value: Any) -> ReEntry:
    if isinstance(value, str):
        return ReEntry(value, None)  # type: ignore[arg-type]  # never / always
    return ReEntry("cooldown", parse_duration(value.cooldown))


def _goal(goal: Any) -> Goal:
    within = parse_duration(goal.within) if goal.within else None
    return Goal(goal.event, _condition(goal.when), within, _condition(goal.value), goal.currency)


def _template(key: str, source: str) -> Template:
    return compile_template(source, html=key == "html")


def _variant(variant: Any, options: tuple[str, ...]) -> Variant:
    given = variant.model_dump(exclude_none=True)
    content = {key: _template(key, value) for key, value in given.items() if key not in options}
    return Variant(
        MappingProxyType(content),
        MappingProxyType({key: given[key] for key in options if key in given}),
    )


def compile_messages(messages: Any) -> dict[str, MappingProxyType[str, Versions]]:
    """A file's `messages:` (a journey's or a broadcast's, None when it has none), by name."""
    return {name: _message(message) for name, message in (messages or {}).items()}


def _message(message: Any) -> MappingProxyType[str, Versions]:
    """A `messages:` entry: channel → its default variant and its variant per locale."""
    channels = [name for name in type(message).model_fields if name != "locales"]
    versions: dict[str, Versions] = {}
    for channel in channels:
        if (default := getattr(message, channel)) is None:
            continue
        options = tuple(registry.spec(channel).options)
        locales = {
            tag: _variant(variants, options)
            for tag, locale in (message.locales or {}).items()
            if (variants := getattr(locale, channel)) is not None
        }
        versions[channel] = Versions(_variant(default, options), MappingProxyType(locales))
    return MappingProxyType(versions)


def _steps(items: list[Any], prefix: str, messages: dict[str, Any]) -> tuple[Step, ...]:
    return tuple(
        _step(item, f"{prefix}.{index}" if prefix else str(index), messages)
        for index, item in enumerate(items)
    )


def _step(item: Any, path: str, messages: dict[str, Any]) -> Step:
    if item == "exit":
        return ExitStep(path)
    kind = next(iter(item.model_fields_set - {"on_timeout", "winner"}))
    value = getattr(item, kind)
    if kind == "wait" and isinstance(value, str):
        return WaitStep(path, parse_duration(value))
    if kind == "wait":
        hour, minute = value.until.split(":")
        return WaitUntilStep(path, time(int(hour), int(minute)))
    if kind == "wait_for":
        on_timeout = _steps(item.on_timeout, f"{path}.0", messages) if item.on_timeout else ()
        timeout = parse_duration(value.timeout)
        return WaitForStep(path, value.event, _condition(value.when), timeout, on_timeout)
    if kind == "branch":
        return BranchStep(
            path,
            tuple(
                BranchArm(
                    _condition(getattr(arm, "when", None)),
                    _steps(
                        arm.steps if hasattr(arm, "when") else arm.else_, f"{path}.{i}", messages
                    ),
                )
                for i, arm in enumerate(value)
            ),
        )
    if kind == "split":
        return SplitStep(path, tuple(_split_arms(value, path, messages)), _winner(item.winner))
    if kind == "update_profile":
        traits = {
            key: compile_template(v, html=False) if isinstance(v, str) else v
            for key, v in value.set.items()
        }
        return UpdateProfileStep(path, MappingProxyType(traits))
    remove = getattr(value, "remove_on_exit", False)
    if value.channel == PREFERRED:
        return SendStep(path, PREFERRED, MappingProxyType({}), False, value.message)
    if (name := getattr(value, "message", None)) is not None:
        versions = messages.get(name, {}).get(value.channel)  # None: `checks` reports it
        content = versions.default.content if versions else MappingProxyType({})
        return SendStep(path, value.channel, content, remove, name, versions)
    content = {
        key: _template(key, source)
        for key, source in value.model_dump(exclude={"channel", "remove_on_exit"}).items()
    }
    return SendStep(path, value.channel, MappingProxyType(content), remove)


def _winner(rule: Any) -> WinnerRule | None:
    if rule is None:
        return None
    at = threshold(rule.at)
    if at is None:  # the model's pattern and bounds are those `threshold` accepts
        raise AssertionError(f"winner.at {rule.at!r} passed the model but is no threshold")
    return WinnerRule(rule.metric, at, rule.min_per_arm)


def _split_arms(arms: list[Any], path: str, messages: dict[str, Any]) -> Iterator[SplitArm]:
    letters = arm_names()
    for index, arm in enumerate(arms):
        if getattr(arm, "holdout", False):
            yield SplitArm(HOLDOUT, arm.weight, True, ())
            continue
        default = next(letters)
        steps = _steps(arm.steps, f"{path}.{index}", messages)
        yield SplitArm(arm.name or default, arm.weight, False, steps)


def _offset(value: str) -> timedelta:
    return timedelta(0) if not value.lstrip("0")[:-1] else parse_duration(value)


def _scenario(test: Any) -> Scenario:
    profile = test.profile.model_dump(exclude_none=True) if test.profile else {}
    events = tuple(
        ScenarioEvent(
            _offset(event.at),
            {"type": "track", "event": event.event, "properties": event.properties or {}},
        )
        for event in test.events
    )
    expect = tuple(
        ExpectedSend(
            _offset(sent.at) if sent.at is not None else None,
            sent.channel,
            MappingProxyType(dict(sent.contains or {})),
        )
        for sent in test.expect
    )
    return Scenario(test.name, profile, events, expect)
