"""What PostgreSQL does per event and per message: statements (round trips), transactions and
rows written by each stage, counted in-process on a scratch database.

Unlike a rate, these counts do not move with the machine's load, so they are the capacity
model's fixed part (docs/scaling.md): a stage's rate on a given PostgreSQL is roughly that
server's statements per second divided by the stage's statements per message.

The welcome-SMS scenario, `--people` people: each person's identify (phone, SMS opt-in) and
`Newsletter Subscribed`, stored as `/v1/batch` stores a batch of 100, routed as the routing job
routes a batch, then the planned SMS delivered in the send job's batches (dry-run channel: the
policy checks, the claim and the result are written as for a real provider).

    .venv/bin/python -m bench.round_trips [--people 1000]
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, select

from app.db import get_engine, session_scope
from app.delivery import service
from app.delivery.models import Delivery
from app.events import routing
from app.events.schemas import SegmentEvent
from app.events.service import store
from app.journeys import catalog
from app.migrate import upgrade
from app.segments import catalog as segment_files
from app.settings import get_settings
from bench.common import (
    arguments,
    load_average,
    machine,
    plain_url,
    quiet_settings,
    scratch_database,
)
from tests.processes import REPO

BATCH = 100  # events per /v1/batch request


@dataclass
class Counts:
    statements: int = 0
    transactions: int = 0
    rows_written: int = 0
    cpu_s: float = 0.0
    by_verb: dict[str, int] = field(default_factory=dict)
    by_shape: dict[str, int] = field(default_factory=dict)


def shape_of(statement: str) -> str:
    """A statement without its column list and parameters: which table, what for."""
    flat = " ".join(statement.split())
    flat = re.sub(r"SELECT .*? FROM", "SELECT … FROM", flat)
    flat = re.sub(r"\((%\(.*?\)s(, )?)+\)|%\(\w+\)s|\(__\[POSTCOMPILE_\w+\]\)", "?", flat)
    return flat[:150]


@contextmanager
def counted(engine: Any) -> Iterator[Counts]:
    """Statements and rows seen by the engine, commits, and this process's CPU time."""
    counts = Counts()

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        counts.statements += 1
        verb = statement.lstrip().split(None, 1)[0].upper()
        counts.by_verb[verb] = counts.by_verb.get(verb, 0) + 1
        shape = shape_of(statement)
        counts.by_shape[shape] = counts.by_shape.get(shape, 0) + 1
        if verb in {"INSERT", "UPDATE", "DELETE"} and cursor.rowcount > 0:
            counts.rows_written += cursor.rowcount

    def on_commit(conn: Any) -> None:
        counts.transactions += 1

    event.listen(engine, "after_cursor_execute", on_execute)
    event.listen(engine, "commit", on_commit)
    started = time.process_time()
    try:
        yield counts
    finally:
        counts.cpu_s = time.process_time() - started
        event.remove(engine, "after_cursor_execute", on_execute)
        event.remove(engine, "commit", on_commit)


def shapes(stage: str, n: int, counts: Counts, top: int) -> str:
    common = sorted(counts.by_shape.items(), key=lambda item: -item[1])[:top]
    return "\n".join(f"  {stage:<9} {k / n:6.2f}  {shape}" for shape, k in common)


def line(stage: str, unit: str, n: int, counts: Counts) -> str:
    verbs = ", ".join(f"{verb} {k / n:.2f}" for verb, k in sorted(counts.by_verb.items()))
    return (
        f"{stage:<10} per {unit:<7} {counts.statements / n:>6.2f} statements "
        f"{counts.transactions / n:>6.3f} transactions {counts.rows_written / n:>6.2f} rows "
        f"{counts.cpu_s / n * 1e6:>8.0f} µs CPU   ({verbs})"
    )


def main() -> None:
    parser = arguments(__doc__ or "")
    parser.add_argument("--people", type=int, default=1000)
    parser.add_argument(
        "--statements", type=int, default=0, metavar="N", help="list each stage's N most run"
    )
    args = parser.parse_args()
    database_url = scratch_database(args)
    # Settings are read from the environment on first use, and cached.
    os.environ.update(
        {
            "CARILLON_DATABASE_URL": database_url,
            "CARILLON_SECRET_KEY": secrets.token_urlsafe(32),
            **quiet_settings(),
        }
    )
    os.environ.pop("CARILLON_REDIS_URL", None)  # the in-process queue: nothing is consumed
    get_settings.cache_clear()
    upgrade()
    catalog.sync_directory(REPO / "journeys")
    segment_files.sync_directory(REPO / "segments")  # as shipped: every event is evaluated
    raw: list[dict[str, Any]] = []
    for i in range(args.people):
        user = f"person-{i}"
        raw.append(
            {
                "type": "identify",
                "userId": user,
                "traits": {"phone": f"+336{i:08}", "sms_opt_in": True, "first_name": "Ada"},
                "messageId": f"{user}-identify",
            }
        )
        raw.append(
            {
                "type": "track",
                "userId": user,
                "event": "Newsletter Subscribed",
                "messageId": f"{user}-signup",
            }
        )
    engine = get_engine()
    print(f"machine: {machine()}; load average {load_average()} at the start")
    print(
        f"{args.people} people: {len(raw)} events, batches of {BATCH}; {plain_url(str(engine.url))}"
    )

    def each_batch(run: Callable[[list[dict[str, Any]]], None]) -> None:
        for start in range(0, len(raw), BATCH):
            run(raw[start : start + BATCH])

    ids: list[int] = []

    def ingest(batch: list[dict[str, Any]]) -> None:
        with session_scope() as session:
            ids.extend(store(session, [SegmentEvent.model_validate(r) for r in batch], "default"))

    with counted(engine) as stored:
        each_batch(ingest)
    with counted(engine) as routed:
        for start in range(0, len(ids), BATCH):
            routing.process_many(ids[start : start + BATCH])
    with session_scope() as session:
        planned = session.execute(select(Delivery.id, Delivery.channel).order_by(Delivery.id)).all()
    with counted(engine) as delivered:
        # As a send job does: its own row and the next due ones of its channel, a batch a call.
        for delivery_id, channel in planned[:: get_settings().delivery_batch_size]:
            service.deliver_batch(delivery_id, channel)
    print(line("ingest", "event", len(raw), stored))
    print(line("routing", "event", len(raw), routed))
    print(line("delivery", "message", len(planned), delivered))
    total = Counts(
        statements=stored.statements + routed.statements + delivered.statements,
        transactions=stored.transactions + routed.transactions + delivered.transactions,
        rows_written=stored.rows_written + routed.rows_written + delivered.rows_written,
        cpu_s=stored.cpu_s + routed.cpu_s + delivered.cpu_s,
    )
    print(line("all", "message", len(planned), total))
    if args.statements:
        print("Most run statements, per event (routing) or message (delivery):")
        print(shapes("routing", len(raw), routed, args.statements))
        print(shapes("delivery", len(planned), delivered, args.statements))


if __name__ == "__main__":
    main()
