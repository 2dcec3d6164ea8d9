"""The dashboard's charts, drawn on the server as inline SVG from the figures `carillon report`
prints: no script, no font or library fetched, so the page works on a machine without internet.

Each chart carries its figures as text beside its bars (a reader, a screen reader and a test
read the same numbers) and a <title> that says it in one sentence. Every name that comes from
a marketer's file (a journey's, an arm's) is escaped. With nothing to draw, a chart is a
sentence saying what would fill it.
"""

from __future__ import annotations

from collections.abc import Iterable

from markupsafe import Markup, escape

from app.analytics.funnel import Funnel
from app.analytics.report import ExperimentReport, amount, change, percent, span
from app.analytics.roi import Figures
from app.ops.sends import SendsPerMinute

LABEL = 150  # the width of the names' column
BAR = 300  # the longest bar
ROW = 22
SERIES = 6  # colours in the stylesheet (series-0 … series-5), reused past that


def _scale(value: float, top: float) -> float:
    """A bar's length: proportional to `value`, the longest `BAR`; 0 when there is no top."""
    return 0.0 if top <= 0 else round(max(value, 0.0) / top * BAR, 1)


def _svg(kind: str, width: int, height: int, title: str, body: Iterable[str]) -> Markup:
    return Markup(
        f'<svg class="chart {kind}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>{''.join(body)}</svg>"
    )


def _text(x: float, y: float, text: str, cls: str = "value", anchor: str = "start") -> str:
    return f'<text x="{x}" y="{y}" class="{cls}" text-anchor="{anchor}">{escape(text)}</text>'


def empty(sentence: str) -> Markup:
    return Markup('<p class="note empty-chart">{}</p>').format(sentence)


def _share(part: int, whole: int) -> str:
    return f" ({part / whole:.0%})" if whole else ""


def funnel(f: Funnel) -> Markup:
    """Entered, sent a message, delivered and clicked (where webhooks tell), converted: one
    bar each, as long as its count, with its share of the people who entered."""
    if not f.entered:
        return empty(f"Nobody has entered {f.name} yet: it starts on its trigger event.")
    stages: list[tuple[str, int | None]] = [
        ("entered", f.entered),
        ("sent a message", f.reached),
        ("dry run (not sent)", f.dry_run or None),
        ("delivered", f.delivered),
        ("clicked", f.clicked),
        ("converted", f.converted),
    ]
    shown = [(label, n) for label, n in stages if n is not None]
    top = max(n for _label, n in shown)
    body = []
    for i, (label, n) in enumerate(shown):
        y = i * ROW
        length = _scale(n, top)
        body += [
            _text(0, y + 15, label, "label"),
            f'<rect x="{LABEL}" y="{y + 3}" width="{length}" height="{ROW - 6}" '
            f'class="bar stage-{i}" data-stage="{escape(label)}"/>',
            _text(LABEL + length + 6, y + 15, f"{n:,}{_share(n, f.entered) if i else ''}"),
        ]
    title = f"Funnel of {f.name}: " + ", ".join(f"{n:,} {label}" for label, n in shown)
    return _svg("funnel", LABEL + BAR + 110, len(shown) * ROW, title, body)


AXIS_ENDS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


def _top_rate(highs: list[float]) -> float:
    """The rate axis' end: the first round figure at or above every interval's upper bound."""
    return next((end for end in AXIS_ENDS if end >= max(highs, default=0.0)), 1.0)


def arms(x: ExperimentReport) -> Markup:
    """Each arm's conversion rate as a dot on its 95 % interval, the control's rate as a dashed
    line down the chart, the figures written beside each arm."""
    e = x.experiment
    highs = [a.rate_interval.high for a in e.arms if a.rate_interval]
    top = _top_rate(highs)
    control = next(a for a in e.arms if a.control)
    height = len(e.arms) * ROW + 18
    body = [
        f'<line x1="{LABEL}" x2="{LABEL + BAR}" y1="{height - 16}" y2="{height - 16}" '
        'class="axis"/>',
        _text(LABEL, height - 3, percent(0.0), "tick", "middle"),
        _text(LABEL + BAR, height - 3, percent(top), "tick", "middle"),
    ]
    if control.rate is not None:
        at = LABEL + _scale(control.rate, top)
        body.append(f'<line x1="{at}" x2="{at}" y1="0" y2="{height - 16}" class="base"/>')
    for i, a in enumerate(e.arms):
        y = i * ROW + ROW / 2
        cls = "control" if a.control else "arm"
        body.append(_text(0, y + 4, f"{a.name} (control)" if a.control else a.name, "label"))
        if a.rate is None or a.rate_interval is None:
            body.append(_text(LABEL + 6, y + 4, "nobody yet"))
            continue
        low, high = (LABEL + _scale(v, top) for v in (a.rate_interval.low, a.rate_interval.high))
        body += [
            f'<line x1="{low}" x2="{high}" y1="{y}" y2="{y}" class="interval {cls}" '
            f'data-arm="{escape(a.name)}"/>',
            f'<line x1="{low}" x2="{low}" y1="{y - 5}" y2="{y + 5}" class="{cls}"/>',
            f'<line x1="{high}" x2="{high}" y1="{y - 5}" y2="{y + 5}" class="{cls}"/>',
            f'<circle cx="{LABEL + _scale(a.rate, top)}" cy="{y}" r="4" class="{cls}"/>',
            _text(LABEL + BAR + 10, y + 4, f"{percent(a.rate)} {span(a.rate_interval, percent)}"),
        ]
    title = f"Conversion rate per arm of {x.name}, with 95 % intervals: " + "; ".join(
        f"{a.name} {percent(a.rate)} {span(a.rate_interval, percent)}".strip() for a in e.arms
    )
    return _svg("arms", LABEL + BAR + 170, height, title, body)


def roi(rows: list[Figures]) -> Markup:
    """Per channel that sent or earned something, its credited revenue and its cost as two
    bars on one scale, and the ROI written beside them."""
    shown = [r for r in rows if r.sent or r.revenue or r.cost]
    if not shown:
        return empty(
            "No message sent yet: revenue and cost per channel appear once messages go out."
        )
    top = max(max(r.revenue, r.cost or 0.0) for r in shown)
    group = 2 * ROW + 8
    body = []
    for i, r in enumerate(shown):
        y = i * group
        body.append(_text(0, y + 15, r.channel or "", "label"))
        for j, (what, value) in enumerate((("revenue", r.revenue), ("cost", r.cost))):
            row = y + j * ROW
            if value is None:
                body.append(_text(LABEL + 6, row + 15, "cost unknown: no price set"))
                continue
            length = _scale(value, top)
            body += [
                f'<rect x="{LABEL}" y="{row + 3}" width="{length}" height="{ROW - 6}" '
                f'class="bar {what}" data-channel="{escape(r.channel or "")}"/>',
                _text(LABEL + length + 6, row + 15, f"{what} {amount(value)} {r.currency}"),
            ]
        figure = "ROI n/a" if r.roi is None else f"ROI {change(r.roi)}"
        body.append(_text(LABEL + BAR + 160, y + ROW + 4, figure, "figure"))
    title = "Revenue and cost per channel: " + "; ".join(
        f"{r.channel} revenue {amount(r.revenue)}, cost {amount(r.cost)} {r.currency}, "
        f"ROI {change(r.roi)}"
        for r in shown
    )
    return _svg("roi", LABEL + BAR + 270, len(shown) * group, title, body)


def sends(rates: SendsPerMinute) -> Markup:
    """One line per channel that sent in the last hour, a point per minute, the newest on the
    right; each channel's total and busiest minute written beneath."""
    active = [(i, c, n) for i, (c, n) in enumerate(rates.counts.items()) if any(n)]
    if not active:
        return empty("No sends in the last hour: messages show here, per minute, as they go out.")
    minutes = len(next(iter(rates.counts.values())))
    top = max(max(n) for _i, _c, n in active)
    width, height, left = 600, 110, 40
    step = width / max(minutes - 1, 1)

    def y(n: int) -> float:
        return round(height - n / top * (height - 10), 1)

    body = [
        f'<line x1="{left}" x2="{left + width}" y1="{height}" y2="{height}" class="axis"/>',
        _text(left - 4, 14, f"{top:,}/min", "tick", "end"),
        _text(left - 4, height, "0", "tick", "end"),
        _text(left, height + 14, f"{minutes} min ago", "tick"),
        _text(left + width, height + 14, "now", "tick", "end"),
    ]
    for k, (i, channel, counts) in enumerate(active):
        points = " ".join(f"{round(left + m * step, 1)},{y(n)}" for m, n in enumerate(counts))
        colour = f"series-{i % SERIES}"
        body += [
            f'<polyline points="{points}" class="line {colour}" data-channel="{escape(channel)}"/>',
            f'<rect x="{left}" y="{height + 24 + k * 18}" width="10" height="10" '
            f'class="{colour}"/>',
            _text(
                left + 16,
                height + 33 + k * 18,
                f"{channel}: {sum(counts):,} in the last hour, at most {max(counts):,} a minute",
            ),
        ]
    title = "Messages sent per minute, last hour: " + "; ".join(
        f"{channel} {sum(counts):,}" for _i, channel, counts in active
    )
    return _svg("sends", left + width + 10, height + 30 + len(active) * 18, title, body)
