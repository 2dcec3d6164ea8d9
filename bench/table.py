"""The one table `make bench` prints: each figure beside its bound and their ratio."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Line:
    """A figure of Carillon's and the bound measured in the same run. For a rate the ratio
    says how much of the bound Carillon reaches; for a latency how many times the floor."""

    name: str
    carillon: float
    bound: float
    bound_is: str
    how: str = ""

    @property
    def ratio(self) -> float:
        return self.carillon / self.bound if self.bound else float("nan")


def number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}"


def _ratio(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"


def render(lines: list[Line], columns: tuple[str, str] = ("Carillon", "bound")) -> str:
    name_width = max(len(line.name) for line in lines)
    ours, theirs = columns
    header = f"{'':<{name_width}}  {ours:>12}  {theirs:>12}  {'ratio':>6}  {theirs}"
    rows = [header, "-" * len(header)]
    for line in lines:
        rows.append(
            f"{line.name:<{name_width}}  {number(line.carillon):>12}  {number(line.bound):>12}"
            f"  {_ratio(line.ratio):>6}  {line.bound_is}"
        )
    rows.append("")
    rows += [f"{line.name}: {line.how}" for line in lines if line.how]
    return "\n".join(rows)
