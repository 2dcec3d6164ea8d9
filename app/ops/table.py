"""`carillon queues` as text: the same figures as `GET /ops/queues`, as a table."""

from __future__ import annotations

from app.delivery.rate_limit import BucketState
from app.ops.queues import QueueRow, Snapshot

HEADERS = (
    "QUEUE",
    "READY",
    "DELAYED",
    "IN FLIGHT",
    "OLDEST",
    "BACKLOG",
    "SENDING",
    "LATE",
    "OLDEST DB",
    "DONE 1m/5m/15m",
    "FAILED 1m/5m/15m",
    "DEAD (broker)",
)


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _windows(counts: dict[str, int] | None) -> str:
    return "n/a" if counts is None else f"{counts['1m']}/{counts['5m']}/{counts['15m']}"


def _opt(value: int | None) -> str:
    return "-" if value is None else str(value)


def _cells(row: QueueRow) -> tuple[str, ...]:
    b = row.broker
    delayed = _opt(b.delayed) if b else _opt(row.backlog.scheduled)
    return (
        row.name,
        _opt(b.ready) if b else "-",
        delayed,
        _opt(b.in_flight) if b else "-",
        age(b.oldest_ready_age_seconds) if b else "-",
        str(row.backlog.waiting),
        _opt(row.backlog.in_flight),
        _opt(row.backlog.late),
        age(row.backlog.oldest_age_seconds),
        _windows(row.processed),
        _windows(row.failed),
        _opt(b.dead_lettered) if b else "-",
    )


def bucket(state: BucketState) -> str:
    """`rate limited 20/s (account AC…): 0.4 tokens, 19/s now, lowered until …`"""
    head = f"rate limited {state.limit} (account {state.account})"
    if state.tokens is None or state.rate_per_second is None:
        return f"{head}: bucket unreadable (Redis down?)"
    text = f"{head}: {state.tokens:g} tokens, {state.rate_per_second:g}/s now"
    return f"{text}, lowered until {state.lowered_until}" if state.lowered_until else text


def render(snapshot: Snapshot) -> str:
    rows = [HEADERS, *(_cells(row) for row in snapshot.queues)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADERS))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    info = snapshot.broker
    state = "reachable" if info.reachable else f"UNREACHABLE ({info.error})"
    workers = f", {info.workers_online} worker(s) online" if info.workers_online is not None else ""
    lines += [
        "",
        f"at {snapshot.generated_at.isoformat(timespec='seconds')}; broker: {info.kind}, "
        f"{state}{workers}",
        "READY/DELAYED/IN FLIGHT/OLDEST: the broker's messages; BACKLOG/SENDING/LATE/OLDEST DB: "
        "what the database says is still to do.",
    ]
    for row in snapshot.queues:
        if row.backlog.needs_review:
            lines.append(f"{row.name}: {row.backlog.needs_review} TO REVIEW")
        lines += [f"{row.name}: {note}" for note in row.notes]
    for p in snapshot.providers:
        limited = bucket(p.rate_limit) if p.rate_limit else "not limited"
        lines.append(f"provider {p.provider} ({p.channel}, {p.mode}): {limited}")
    if snapshot.providers:
        lines.append(f"  note: {snapshot.providers[0].rate_limit_note}")
    return "\n".join(lines)
