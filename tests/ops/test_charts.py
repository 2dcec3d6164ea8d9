"""The dashboard's SVG charts, drawn from hand-made figures: bars as long as their values, the
intervals where the figures put them, a sentence instead of a chart with nothing to draw, no
division by zero, and a marketer's names escaped. Every chart must parse as XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from app.analytics import experiments
from app.analytics.experiments import ArmCounts
from app.analytics.funnel import ALL_ARMS, Funnel
from app.analytics.report import ExperimentReport
from app.analytics.roi import Figures
from app.ops import charts
from app.ops.sends import SendsPerMinute

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = "<script>alert(1)</script>"


def parse(markup: str) -> ET.Element:
    return ET.fromstring(str(markup))


def texts(svg: ET.Element) -> list[str]:
    return [t.text or "" for t in svg.iter(f"{SVG}text")]


def bars(svg: ET.Element, attribute: str) -> dict[str, float]:
    return {r.get(attribute, ""): float(r.get("width", "nan")) for r in svg.iter(f"{SVG}rect")}


def funnel(**counts: int | None) -> Funnel:
    figures: dict[str, int | None] = {
        "entered": 200, "reached": 100, "dry_run": 0, "delivered": None, "clicked": None,
        "converted": 50, **counts,
    }  # fmt: skip
    return Funnel("winback", "Win-back", ALL_ARMS, **figures)  # type: ignore[arg-type]


def test_a_funnel_draws_each_stage_as_long_as_its_count_with_its_share() -> None:
    svg = parse(charts.funnel(funnel(delivered=80, clicked=0)))
    widths = bars(svg, "data-stage")
    assert widths == {
        "entered": charts.BAR,
        "sent a message": charts.BAR / 2,
        "delivered": charts.BAR * 80 / 200,
        "clicked": 0,
        "converted": charts.BAR / 4,
    }
    shown = texts(svg)
    numbers = [t for t in shown if t[0].isdigit()]
    assert numbers == ["200", "100 (50%)", "80 (40%)", "0 (0%)", "50 (25%)"]
    assert svg.findtext(f"{SVG}title") == (
        "Funnel of Win-back: 200 entered, 100 sent a message, 80 delivered, 0 clicked, 50 converted"
    )


def test_a_funnel_leaves_out_the_stages_no_webhook_told_and_shows_dry_runs() -> None:
    svg = parse(charts.funnel(funnel(reached=0, dry_run=150)))
    assert list(bars(svg, "data-stage")) == [
        "entered",
        "sent a message",
        "dry run (not sent)",
        "converted",
    ]


def test_an_empty_funnel_says_what_starts_it_and_escapes_the_name() -> None:
    drawn = str(charts.funnel(Funnel("x", HOSTILE, ALL_ARMS, 0, 0, 0, None, None, 0)))
    assert "<svg" not in drawn and "<script>" not in drawn
    assert "Nobody has entered &lt;script&gt;alert(1)&lt;/script&gt; yet" in drawn


def test_a_funnel_escapes_the_journey_name_in_its_title() -> None:
    drawn = charts.funnel(Funnel("x", HOSTILE, ALL_ARMS, 3, 1, 0, None, None, 1))
    assert "<script>" not in drawn
    assert parse(drawn).findtext(f"{SVG}title", "").startswith(f"Funnel of {HOSTILE}:")


def ab_test(*arms: ArmCounts, name: str = "Win-back") -> ExperimentReport:
    analysed = experiments.analyse(arms, 100)
    return ExperimentReport("winback", name, 1, "1", "Order Completed", None, analysed)


def test_each_arm_is_a_dot_on_its_interval_and_the_control_is_marked() -> None:
    report = ab_test(
        ArmCounts("holdout", 10, 100, 10, True, 0.0, 0.0),
        ArmCounts("A", 90, 900, 180, False, 0.0, 0.0),
    )
    svg = parse(charts.arms(report))
    holdout, a = report.experiment.arms
    assert holdout.rate_interval is not None and a.rate_interval is not None
    assert 0.2 < a.rate_interval.high < 0.5
    top = 0.5  # the axis ends at the first round figure above every interval
    lines = list(svg.iter(f"{SVG}line"))
    intervals = {line.get("data-arm"): line for line in lines if line.get("data-arm")}

    def x(rate: float) -> float:
        return round(charts.LABEL + rate / top * charts.BAR, 1)

    for arm in (holdout, a):
        assert arm.rate_interval is not None and arm.rate is not None
        line = intervals[arm.name]
        assert float(line.get("x1", "")) == x(arm.rate_interval.low)
        assert float(line.get("x2", "")) == x(arm.rate_interval.high)
    dots = [float(c.get("cx", "")) for c in svg.iter(f"{SVG}circle")]
    assert dots == [x(0.1), x(0.2)]
    [base] = [line for line in svg.iter(f"{SVG}line") if line.get("class") == "base"]
    assert float(base.get("x1", "")) == x(0.1)  # the control's rate, down the chart
    shown = texts(svg)
    assert "holdout (control)" in shown and "A" in shown
    assert "20.0% [" in " ".join(shown)
    assert (intervals["holdout"].get("class"), intervals["A"].get("class")) == (
        "interval control",
        "interval arm",
    )


def test_arms_nobody_reached_are_said_so_without_a_division_by_zero() -> None:
    report = ab_test(
        ArmCounts(HOSTILE, 50, 0, 0, False, 0.0, 0.0), ArmCounts("B", 50, 0, 0, False, 0.0, 0.0)
    )
    drawn = charts.arms(report)
    svg = parse(drawn)
    assert texts(svg).count("nobody yet") == 2
    assert not list(svg.iter(f"{SVG}circle"))
    assert "<script>" not in drawn and f"{HOSTILE} (control)" in texts(svg)


def figures(channel: str, revenue: float, cost: float | None, sent: int = 10) -> Figures:
    roi = None if not cost else (revenue - cost) / cost
    return Figures(channel, None, None, sent, sent, cost, revenue, "EUR", roi)


def test_roi_draws_revenue_and_cost_on_one_scale_with_the_roi_beside() -> None:
    svg = parse(charts.roi([figures("email", 40.0, 10.0), figures("sms", 0.0, 20.0)]))
    widths = [
        (r.get("data-channel"), r.get("class"), float(r.get("width", "")))
        for r in svg.iter(f"{SVG}rect")
    ]
    assert widths == [
        ("email", "bar revenue", charts.BAR),
        ("email", "bar cost", charts.BAR / 4),
        ("sms", "bar revenue", 0.0),
        ("sms", "bar cost", charts.BAR / 2),
    ]
    shown = texts(svg)
    assert "revenue 40.00 EUR" in shown and "cost 20.00 EUR" in shown
    assert "ROI +300.0%" in shown and "ROI -100.0%" in shown


def test_roi_without_a_price_or_a_sale_divides_by_nothing() -> None:
    svg = parse(charts.roi([figures("email", 0.0, None), figures("sms", 0.0, 0.0)]))
    shown = texts(svg)
    assert "cost unknown: no price set" in shown
    assert shown.count("ROI n/a") == 2
    assert {float(r.get("width", "")) for r in svg.iter(f"{SVG}rect")} == {0.0}


def test_roi_with_nothing_sent_says_so() -> None:
    drawn = str(charts.roi([figures("email", 0.0, 0.0, sent=0)]))
    assert "<svg" not in drawn and "No message sent yet" in drawn


START = datetime(2026, 11, 2, 8, 1, tzinfo=UTC)


def test_sends_per_minute_draw_a_line_per_channel_that_sent() -> None:
    email = [0] * 60
    email[10], email[59] = 4, 8
    rates = SendsPerMinute(START, {"email": email, "sms": [0] * 60, HOSTILE: [1] + [0] * 59})
    drawn = charts.sends(rates)
    svg = parse(drawn)
    lines = {p.get("data-channel"): p.get("points", "").split() for p in svg.iter(f"{SVG}polyline")}
    assert list(lines) == ["email", HOSTILE]  # sms sent nothing: no line
    points = [tuple(float(v) for v in p.split(",")) for p in lines["email"]]
    assert len(points) == 60
    ys = [y for _x, y in points]
    assert ys[59] == min(ys) and ys[10] == pytest.approx(ys[0] - (ys[0] - ys[59]) / 2)
    assert [x for x, _y in points] == sorted(x for x, _y in points)  # oldest on the left
    assert "email: 12 in the last hour, at most 8 a minute" in texts(svg)
    assert "8/min" in texts(svg)
    assert "<script>" not in drawn


def test_no_sends_in_the_last_hour_is_a_sentence() -> None:
    drawn = str(charts.sends(SendsPerMinute(START, {"email": [0] * 60, "sms": [0] * 60})))
    assert "<svg" not in drawn and "No sends in the last hour" in drawn
