"""Experiment results for people: the same figures as JSON (API, `--format json`), CSV (one row
per arm, for a spreadsheet) or a table for the terminal."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.analytics import experiments
from app.analytics.experiments import ArmResult, Experiment
from app.analytics.proportions import Interval
from app.analytics.repository import split_counts
from app.analytics.winners import winners

FORMATS = ("table", "csv", "json")
NO_GOAL = "no goal: add `goal:` to the journey, so that conversions are counted"


@dataclass(frozen=True)
class DeclaredWinner:
    """The arm the split's `winner:` rule declared: every new entrant since goes down it."""

    arm: str
    metric: str
    p_value: float
    decided_at: datetime

    def sentence(self) -> str:
        when = self.decided_at.strftime("%Y-%m-%d %H:%M UTC")
        return (
            f"winner: {self.arm} since {when} ({self.metric}, p = {p_value(self.p_value)}); "
            f"new entrants all go to {self.arm}"
        )


@dataclass(frozen=True)
class ExperimentReport:
    journey_id: str
    name: str
    version: int
    step: str
    goal: str | None
    currency: str | None  # of the revenue figures; None when the goal has no value
    experiment: Experiment
    # The `winner:` rule: None without one; `declared` None while the test is undecided.
    winner_rule: str | None = None
    declared: DeclaredWinner | None = None


def results(
    session: Session, journey_id: str | None = None, min_per_arm: int = experiments.MIN_PER_ARM
) -> list[ExperimentReport]:
    """Every current split's results, or the named journey's (UnknownExperiment if none)."""
    reports = []
    splits = split_counts(session, journey_id)
    declared = winners(session, [split.version_id for split in splits])
    for split in splits:
        experiment = experiments.analyse(split.arms, min_per_arm)
        if split.goal is None:  # every rate is 0 %: say why rather than "nobody converted"
            experiment = replace(experiment, verdict=NO_GOAL)
        rule = split.winner
        row = declared.get((split.version_id, split.step))
        winner = (
            None
            if row is None
            else DeclaredWinner(row.arm, row.metric, row.p_value, row.decided_at)
        )
        if winner is not None:
            experiment = replace(experiment, verdict=winner.sentence())
        reports.append(
            ExperimentReport(
                split.journey_id,
                split.name,
                split.version,
                split.step,
                split.goal,
                split.currency,
                experiment,
                None
                if rule is None
                else f"{rule.metric} at p < {rule.threshold:g}, {rule.min_per_arm:,} per arm",
                winner,
            )
        )
    return reports


def as_dicts(reports: list[ExperimentReport]) -> list[dict[str, Any]]:
    return [asdict(report) for report in reports]


def as_json(reports: list[ExperimentReport]) -> str:
    return json.dumps(as_dicts(reports), indent=2, default=datetime.isoformat)


def _number(value: float | None, digits: int = 6) -> str:
    return "" if value is None else f"{value:.{digits}g}"


def _bounds(interval: Interval | None) -> list[str]:
    return ["", ""] if interval is None else [_number(interval.low), _number(interval.high)]


CSV_HEADER = [
    "journey_id", "version", "split_step", "arm", "weight", "holdout", "control",
    "recipients", "conversions", "rate", "rate_low", "rate_high",
    "lift", "lift_low", "lift_high", "relative_lift", "relative_lift_low", "relative_lift_high",
    "incremental_conversions", "incremental_low", "incremental_high",
    "currency", "revenue", "revenue_per_person",
    "incremental_revenue", "incremental_revenue_low", "incremental_revenue_high", "needed",
    "test", "p_value", "significant", "sample_ratio_p_value", "sample_ratio_mismatch",
    "min_per_arm", "more_needed_per_arm", "verdict",
]  # fmt: skip


def as_csv(reports: list[ExperimentReport]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for report in reports:
        e = report.experiment
        for arm in e.arms:
            writer.writerow(
                [
                    report.journey_id, report.version, report.step, arm.name, arm.weight,
                    arm.holdout, arm.control, arm.recipients, arm.conversions,
                    _number(arm.rate), *_bounds(arm.rate_interval),
                    _number(arm.lift), *_bounds(arm.lift_interval),
                    _number(arm.relative_lift), *_bounds(arm.relative_lift_interval),
                    _number(arm.incremental_conversions), *_bounds(arm.incremental_interval),
                    report.currency or "", _number(arm.revenue),
                    _number(arm.revenue_per_person), _number(arm.incremental_revenue),
                    *_bounds(arm.incremental_revenue_interval),
                    "" if arm.needed is None else arm.needed,
                    e.test, _number(e.p_value), e.significant,
                    _number(e.sample_ratio_p_value), e.sample_ratio_mismatch,
                    e.min_per_arm, "" if e.more_needed_per_arm is None else e.more_needed_per_arm,
                    e.verdict,
                ]
            )  # fmt: skip
    return out.getvalue()


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def change(value: float | None) -> str:
    """A relative lift: +12.5 %."""
    return "n/a" if value is None else f"{round(value * 100, 1) + 0.0:+.1f}%"


def points(value: float | None) -> str:
    """A difference of two rates in percentage points: +2.1 pts."""
    # + 0.0 turns a rounded -0.0 into 0.0: "+0.0 pts", not "-0.0 pts".
    return "n/a" if value is None else f"{round(value * 100, 1) + 0.0:+.1f} pts"


def span(interval: Interval | None, fmt: Callable[[float], str]) -> str:
    return "" if interval is None else f"[{fmt(interval.low)}, {fmt(interval.high)}]"


TABLE_HEADER = ("ARM", "WEIGHT", "PEOPLE", "CONVERTED", "RATE (95 % CI)", "LIFT (95 % CI)",
                "RELATIVE (95 % CI)", "NEEDED")  # fmt: skip
REVENUE_HEADER = ("REVENUE", "ADDED BY THE MESSAGES (95 % CI)")


def amount(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.2f}"


def _revenue_cells(arm: ArmResult, currency: str) -> tuple[str, ...]:
    added = ""
    if arm.incremental_revenue is not None:
        signed = f"{arm.incremental_revenue:+,.2f}"
        added = f"{signed} {span(arm.incremental_revenue_interval, amount)}".strip()
    return f"{amount(arm.revenue)} {currency}", added or "-"


def _cells(arm: ArmResult) -> tuple[str, ...]:
    name = f"{arm.name} (control)" if arm.control else arm.name
    if arm.control:
        lift = relative = "-"
    else:
        lift = f"{points(arm.lift)} {span(arm.lift_interval, points)}".strip()
        relative = f"{change(arm.relative_lift)} {span(arm.relative_lift_interval, change)}".strip()
    return (
        name,
        f"{arm.weight}%",
        f"{arm.recipients:,}",
        f"{arm.conversions:,}",
        f"{percent(arm.rate)} {span(arm.rate_interval, percent)}".strip(),
        lift,
        relative,
        "-" if arm.needed is None else f"{arm.needed:,}",
    )


def p_value(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def as_table(reports: list[ExperimentReport]) -> str:
    if not reports:
        return "No journey with a split is loaded."
    blocks = []
    for report in reports:
        e = report.experiment
        currency = report.currency
        rows = [
            TABLE_HEADER + (REVENUE_HEADER if currency else ()),
            *(_cells(arm) + (_revenue_cells(arm, currency) if currency else ()) for arm in e.arms),
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = [
            f"{report.name} ({report.journey_id} v{report.version}, split at step {report.step}, "
            f"goal: {report.goal or 'none'})",
            *(
                "  ".join(
                    cell.ljust(w) if i == 0 else cell.rjust(w)
                    for i, (cell, w) in enumerate(zip(row, widths, strict=True))
                )
                for row in rows
            ),
            f"{e.test}: p = {p_value(e.p_value)}; sample ratio check: "
            f"p = {p_value(e.sample_ratio_p_value)}{' MISMATCH' if e.sample_ratio_mismatch else ''}"
            f"; minimum {e.min_per_arm:,} per arm",
            f"=> {e.verdict}",
        ]
        if report.winner_rule and report.declared is None:
            lines.append(f"   automatic winner when: {report.winner_rule}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def render(reports: list[ExperimentReport], fmt: str) -> str:
    if fmt == "json":
        return as_json(reports)
    if fmt == "csv":
        return as_csv(reports)
    if fmt == "table":
        return as_table(reports)
    raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
