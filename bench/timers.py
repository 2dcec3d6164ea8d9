"""Timers: trips waiting in the database, and how fast `carillon scheduler` fires the due ones.

One real cart-abandonment trip is made through `carillon api` and `carillon worker` (an
identify with an e-mail address, a `Cart Abandoned` of 42.50 €): its person, identities,
traits, trigger event, trip and pending wait. Its rows are then copied in bulk (one
`INSERT … SELECT` per table over `generate_series`, every column copied but the keys) into
`--timers` trips, `--due` of them due now and the others in a day. The bound claims the due
rows with a bare `UPDATE … RETURNING` in batches of the scheduler's size; the rows are then
put back to pending and `carillon scheduler` fires them (trip resumed, reminder rendered into
the outbox, queued on Redis; no worker runs). Rate = due timers / (last − first `fired_at`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from bench.common import fresh_services, plain_url
from bench.table import Line
from tests.processes import CARILLON, Carillon, running_carillon

BATCH_SIZE = 500  # the scheduler's CARILLON_TIMER_BATCH_SIZE default
PERSON = "md5({column} || ':' || g)::uuid::text"  # the copy number g of a person's id
# How each copy differs from the template row; every other column is copied as it is.
CHANGED = {
    "profiles": {"id": PERSON.format(column="t.id")},
    "profile_identities": {"value": "g || '-' || t.value"},
    "events": {"message_id": "t.message_id || ':' || g"},
    "journey_instances": {
        "trigger_event_id": (
            "(SELECT c.id FROM events c JOIN events o ON o.id = t.trigger_event_id"
            " WHERE c.source = o.source AND c.message_id = o.message_id || ':' || g)"
        )
    },
    "journey_timers": {
        "instance_id": (
            "(SELECT c.id FROM journey_instances c JOIN journey_instances o"
            " ON o.id = t.instance_id WHERE c.journey_id = o.journey_id AND c.status = 'active'"
            f" AND c.profile_id = {PERSON.format(column='o.profile_id')})"
        ),
        "due_at": "CASE WHEN g <= %(due)s THEN now() - interval '1 minute'"
        " ELSE now() + interval '1 day' END",
    },
}
# In dependency order: a copy refers to copies made before it.
TABLES = (
    "profiles",
    "profile_identities",
    "profile_traits",
    "events",
    "journey_instances",
    "journey_timers",
)
CLAIM = """UPDATE journey_timers SET status = 'fired', fired_at = now()
WHERE id IN (SELECT id FROM journey_timers WHERE status = 'pending' AND due_at <= now()
             ORDER BY due_at LIMIT %s FOR UPDATE SKIP LOCKED)
RETURNING id"""


def template_trip(env: dict[str, str], workdir: Path) -> None:
    subprocess.run(
        [CARILLON, "journeys", "reload"], env={**os.environ, **env}, check=True, capture_output=True
    )
    now = datetime.now(UTC).isoformat()
    traits = {"email": "lea@example.com", "first_name": "Léa"}
    cart = {"total": 42.5, "cart_url": "https://shop.example/cart/1"}
    person = {"userId": "template", "timestamp": now}
    batch = [
        {"type": "identify", "traits": traits, **person},
        {"type": "track", "event": "Cart Abandoned", "properties": cart, **person},
    ]
    with running_carillon(workdir, env, ("api", "worker")) as carillon:
        carillon.post("/v1/batch", {"batch": batch}).raise_for_status()
        url = plain_url(env["CARILLON_DATABASE_URL"])
        carillon.wait_until("the template trip waits", lambda: _count(url, "journey_timers") == 1)


def _count(url: str, table: str, where: str = "TRUE") -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()
        return int(row[0]) if row else 0


def _copies(conn: psycopg.Connection[tuple[object, ...]], table: str) -> str:
    columns = conn.execute(
        "SELECT column_name, column_default, is_identity FROM information_schema.columns"
        " WHERE table_name = %s ORDER BY ordinal_position",
        [table],
    ).fetchall()
    changed = dict(CHANGED.get(table, {}))
    if table != "profiles" and any(name == "profile_id" for name, *_ in columns):
        changed["profile_id"] = PERSON.format(column="t.profile_id")
    kept = [
        str(name)
        for name, default, identity in columns
        if identity != "YES" and not str(default or "").startswith("nextval(")
    ]
    values = ", ".join(changed.get(name, f"t.{name}") for name in kept)
    return (
        f"INSERT INTO {table} ({', '.join(kept)}) SELECT {values}"
        f" FROM {table} t CROSS JOIN generate_series(1, %(copies)s) AS g"
    )


def copy_trips(url: str, copies: int, due: int) -> None:
    with psycopg.connect(url) as conn:
        for table in TABLES:
            conn.execute(_copies(conn, table), {"copies": copies, "due": due})
        # The template itself is not among the measured ones.
        conn.execute(
            "UPDATE journey_timers SET due_at = now() + interval '1 day'"
            " WHERE id = (SELECT min(id) FROM journey_timers)"
        )
    _vacuum(url)


def _vacuum(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def bare_claims(url: str) -> float:
    """Due timers claimed per second by `UPDATE … RETURNING`, one transaction per batch."""
    claimed = 0
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        while True:
            with conn.transaction():
                rows = conn.execute(CLAIM, [BATCH_SIZE]).fetchall()
            claimed += len(rows)
            if len(rows) < BATCH_SIZE:
                break
        elapsed = time.perf_counter() - started
        conn.execute("UPDATE journey_timers SET status = 'pending', fired_at = NULL")
        conn.commit()
    _vacuum(url)
    return claimed / elapsed


def scheduler_fires(url: str, env: dict[str, str], workdir: Path, due: int) -> float:
    with running_carillon(workdir, env, ("scheduler",)) as carillon:
        _wait_fired(carillon, url, due)
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*), extract(epoch FROM max(fired_at) - min(fired_at))"
            " FROM journey_timers WHERE status = 'fired'"
        ).fetchone()
    assert row is not None
    return float(row[0]) / float(row[1])


def _wait_fired(carillon: Carillon, url: str, due: int) -> None:
    carillon.wait_until(
        f"{due} timers fired",
        lambda: _count(url, "journey_timers", "status <> 'pending'") >= due,
        timeout=3600,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("timers")
    group.add_argument("--timers", type=int, default=100_000, help="trips waiting")
    group.add_argument("--due", type=int, default=5_000, help="of which due now")


def measure(args: argparse.Namespace, workdir: Path) -> Line:
    env = fresh_services(args)
    url = plain_url(env["CARILLON_DATABASE_URL"])
    template_trip(env, workdir)
    started = time.monotonic()
    copy_trips(url, args.timers, args.due)
    copied = time.monotonic() - started
    bound = bare_claims(url)
    fired = scheduler_fires(url, env, workdir, args.due)
    return Line(
        "due waits fired by `carillon scheduler` (/s)",
        fired,
        bound,
        "bare UPDATE ... RETURNING claim",
        f"{args.due} due among {args.timers} waiting trips (copied in {copied:.0f} s), "
        f"batches of {BATCH_SIZE}",
    )
