"""The CDP's targets (issue 14), on the production roles (`api`, `worker`, `scheduler` on
PostgreSQL + Redis, the scheduler's default 1 s tick):

- membership: `track` events posted at a steady rate through `/v1/batch`, each making a new
  person enter a bench segment whose entry starts a journey; for a sample (the first person
  of each batch), the time from the batch's 200 to their membership committed (what
  `GET /v1/profiles/{id}` reads; checked through that API at the end) and to their trip's row.
  The bound: the same path with one event at a time, no load, in the same run.
- expiry: people whose membership rests on a `within: 1h` window, their event placed so that
  the window closes during the run; how long after that moment their membership is gone.
  The bound: the scheduler's tick.
- backfill: people loaded with COPY (the fastest bound for rows), then a new segment file
  loaded with `carillon segments reload`; the time until its backfill is done, read from
  `GET /ops/segments`, against a bare `INSERT ... SELECT` of the same trait and membership
  rows; and the SMS end-to-end throughput (bench/end_to_end) before and during it.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench import population
from bench.common import fresh_services, load_average, plain_url
from bench.end_to_end import bodies, warmed_up
from bench.figures import percentile, sustained_rate
from bench.ingest import post_all
from bench.standin import StandIn
from bench.table import Line
from tests.processes import CARILLON, PRODUCTION_ROLES, REPO, WRITE_KEY, Carillon, running_carillon

ENTRY_EVENT = "Bench Viewed"
WINDOW_EVENT = "Bench Recent"
SEGMENTS = {
    "bench_viewers.yaml": f"""id: bench-viewers
name: Viewed a product (bench)
traits:
  bench_views: {{count: "{ENTRY_EVENT}"}}
when: profile.computed.bench_views >= 1
""",
    "bench_recent.yaml": f"""id: bench-recent
name: Viewed in the last hour (bench)
traits:
  bench_recent_views: {{count: "{WINDOW_EVENT}", within: 1h}}
when: profile.computed.bench_recent_views >= 1
""",
}
WINDOW = timedelta(hours=1)
JOURNEY = """id: bench-entry
name: Entered the bench segment
trigger:
  segment: bench-viewers
  on: enter
steps:
  - wait: 1h
"""
# The segment the backfill measures: a running aggregate and a windowed one, as the shipped
# files mix them; half the loaded people are in.
BACKFILLED = f"""id: bench-spenders
name: Spent 50 or more (bench)
traits:
  bench_spend_max: {{max: "{population.EVENT}", of: properties.total}}
  bench_purchases_90d: {{count: "{population.EVENT}", within: 90d}}
when: has(profile.computed.bench_spend_max) && profile.computed.bench_spend_max >= 50
  && profile.computed.bench_purchases_90d >= 1
"""
POLL_SECONDS = 0.02
ADMIN_TOKEN = secrets.token_urlsafe(24)
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SETTINGS = {"CARILLON_SCHEDULER_INTERVAL_SECONDS": "1"}  # the default tick, not the tests' 0.2


def percentiles(values: list[float]) -> dict[str, float]:
    return {f"p{q}": percentile(values, q) for q in (50, 95, 99)}


def ms(figures: dict[str, float]) -> str:
    return " ".join(f"{name} {value * 1000:.0f} ms" for name, value in figures.items())


def directories(workdir: Path) -> dict[str, str]:
    segments, journeys = workdir / "bench-segments", workdir / "bench-journeys"
    for folder in (segments, journeys):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    for source in (REPO / "segments").glob("*.yaml"):  # what a shop runs besides
        shutil.copy(source, segments / source.name)
    for name, text in SEGMENTS.items():
        (segments / name).write_text(text)
    (journeys / "bench_entry.yaml").write_text(JOURNEY)
    return {"CARILLON_SEGMENTS_DIR": str(segments), "CARILLON_JOURNEYS_DIR": str(journeys)}


def track(user: str, event: str, at: datetime) -> dict[str, Any]:
    return {
        "type": "track",
        "event": event,
        "userId": user,
        "messageId": str(uuid.uuid4()),
        "timestamp": at.isoformat(),
        "properties": {"sku": "SKU-1"},
    }


class Watcher:
    """Polls the database every 20 ms for the watched people's membership of a segment and
    their trip: when each was first seen committed (or, `gone`, first seen absent)."""

    def __init__(self, database_url: str, segment: str, journey: str | None, gone: bool) -> None:
        self._url, self._segment, self._journey, self._gone = database_url, segment, journey, gone
        self._pending: set[str] = set()
        self.member: dict[str, float] = {}
        self.trip: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def watch(self, users: list[str]) -> None:
        with self._lock:
            self._pending.update(users)

    def _run(self) -> None:
        members = (
            "SELECT i.value FROM profile_identities i JOIN segment_memberships m"
            " ON m.profile_id = i.profile_id AND m.segment_id = %s"
            " WHERE i.kind = 'user_id' AND i.value = ANY(%s)"
        )
        trips = (
            "SELECT i.value FROM profile_identities i JOIN journey_instances j"
            " ON j.profile_id = i.profile_id AND j.journey_id = %s"
            " WHERE i.kind = 'user_id' AND i.value = ANY(%s)"
        )
        with psycopg.connect(self._url, autocommit=True) as conn:
            while not self._stop.is_set():
                with self._lock:
                    waiting = sorted(self._pending - set(self.member))
                    tripless = sorted(self._pending - set(self.trip)) if self._journey else []
                if waiting:
                    found = {row[0] for row in conn.execute(members, (self._segment, waiting))}
                    now = time.monotonic()
                    seen = set(waiting) - found if self._gone else found
                    self.member.update({user: now for user in seen})
                if tripless:
                    found = {row[0] for row in conn.execute(trips, (self._journey, tripless))}
                    now = time.monotonic()
                    self.trip.update({user: now for user in found})
                time.sleep(POLL_SECONDS)  # the poll's period, the figures' resolution

    def done(self) -> bool:
        with self._lock:
            return self._pending <= set(self.member) and (
                not self._journey or self._pending <= set(self.trip)
            )

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def paced(
    carillon: Carillon, rate: float, seconds: float, batch: int, watcher: Watcher
) -> tuple[dict[str, float], float]:
    """Post batches of new people's entry events at `rate` events/s for `seconds`; the first
    person of each batch is watched. Returns when each watched batch got its 200, and the
    rate actually posted."""
    answered: dict[str, float] = {}
    batches = int(rate * seconds / batch)
    started = time.monotonic()

    def post(index: int) -> None:
        users = [f"lat-{index}-{n}" for n in range(batch)]
        body = {"batch": [track(u, ENTRY_EVENT, datetime.now(UTC)) for u in users]}
        client.post(f"{carillon.base_url}/v1/batch", json=body).raise_for_status()
        answered[users[0]] = time.monotonic()
        watcher.watch([users[0]])

    with (
        httpx.Client(auth=(WRITE_KEY, ""), timeout=60) as client,
        ThreadPoolExecutor(8) as pool,
    ):
        futures = []
        for index in range(batches):
            due = started + index * batch / rate
            time.sleep(max(0.0, due - time.monotonic()))  # pacing the load, not a wait on it
            futures.append(pool.submit(post, index))
        for future in futures:
            future.result()
    return answered, batches * batch / (time.monotonic() - started)


def membership(args: argparse.Namespace, carillon: Carillon, database_url: str) -> list[Line]:
    with Watcher(database_url, "bench-viewers", "bench-entry", gone=False) as watcher:
        alone: dict[str, float] = {}  # the bound: one event at a time, nothing else running
        for index in range(21):  # the first wakes every process up: not counted
            user = f"alone-{index}"
            body = {"batch": [track(user, ENTRY_EVENT, datetime.now(UTC))]}
            carillon.post("/v1/batch", body).raise_for_status()
            alone[user] = time.monotonic()
            watcher.watch([user])
            carillon.wait_until("an unloaded entry", watcher.done, 30)
        load = load_average()
        answered, posted = paced(carillon, args.segment_rate, args.segment_seconds, 100, watcher)
        carillon.wait_until("every sampled entry", watcher.done, 600)
    alone.pop("alone-0")
    floor = {
        "member": percentiles([watcher.member[u] - t for u, t in alone.items()]),
        "trip": percentiles([watcher.trip[u] - t for u, t in alone.items()]),
    }
    member = percentiles([watcher.member[u] - t for u, t in answered.items()])
    trip = percentiles([watcher.trip[u] - t for u, t in answered.items()])
    checked = sorted(answered)[:20]
    shown = sum("bench-viewers" in show(carillon, user)["segments"] for user in checked)
    how = (
        f"{posted:.0f} events/s posted for {args.segment_seconds:g} s (batches of 100), "
        f"{len(answered)} people sampled, polled every {POLL_SECONDS * 1000:.0f} ms: "
        f"membership {ms(member)}, trip {ms(trip)}; unloaded: membership {ms(floor['member'])}, "
        f"trip {ms(floor['trip'])}; GET /v1/profiles shows the segment for {shown}/"
        f"{len(checked)} checked; load average {load}"
    )
    print(f"    {how}", flush=True)
    return [
        Line(
            f"segment entry visible at {args.segment_rate:g} events/s, p95 (ms)",
            member["p95"] * 1000,
            floor["member"]["p95"] * 1000,
            "one event at a time, no load",
            how,
        ),
        Line(
            f"segment-entry trip started at {args.segment_rate:g} events/s, p95 (ms)",
            trip["p95"] * 1000,
            floor["trip"]["p95"] * 1000,
            "one event at a time, no load",
        ),
    ]


def show(carillon: Carillon, user: str) -> dict[str, Any]:
    answer = httpx.get(f"{carillon.base_url}/v1/profiles/{user}", headers=ADMIN, timeout=30)
    answer.raise_for_status()
    person: dict[str, Any] = answer.json()
    return person


def expiry(args: argparse.Namespace, carillon: Carillon, database_url: str) -> Line:
    """People whose only event leaves its window between 20 and 30 s from now."""
    people = args.expiry_people
    now = datetime.now(UTC)
    boundaries = {f"exp-{i}": now + timedelta(seconds=20 + 10 * i / people) for i in range(people)}
    events = [track(u, WINDOW_EVENT, at - WINDOW) for u, at in boundaries.items()]
    for start in range(0, len(events), 100):
        carillon.post("/v1/batch", {"batch": events[start : start + 100]}).raise_for_status()
    with Watcher(database_url, "bench-recent", None, gone=False) as entered:
        entered.watch(list(boundaries))
        carillon.wait_until("everybody entered the windowed segment", entered.done, 60)
    load = load_average()
    with Watcher(database_url, "bench-recent", None, gone=True) as left:
        left.watch(list(boundaries))
        carillon.wait_until("everybody left the windowed segment", left.done, 300)
    wall = time.time() - time.monotonic()  # the monotonic clock's moments as wall-clock time
    late = [wall + left.member[u] - at.timestamp() for u, at in boundaries.items()]
    figures = percentiles(late)
    how = (
        f"{people} people, windows closing over 10 s, polled every {POLL_SECONDS * 1000:.0f} ms: "
        f"exit after the boundary {ms(figures)}, max {max(late) * 1000:.0f} ms; "
        f"load average {load}"
    )
    print(f"    {how}", flush=True)
    tick = float(SETTINGS["CARILLON_SCHEDULER_INTERVAL_SECONDS"])
    return Line(
        "window expiry applied after the boundary, max (s)",
        max(late),
        tick,
        "the scheduler's tick",
        how,
    )


def sms_rate(carillon: Carillon, standin: StandIn, people: range) -> float:
    """The SMS end-to-end load of bench/end_to_end for these people: messages/s sustained."""
    post_all(carillon.base_url, bodies(people), clients=4)
    accepted = standin.wait_for(len(people))
    if len(accepted) < len(people):
        raise RuntimeError(f"{len(people) - len(accepted)} SMS missing: see the processes' logs")
    return sustained_rate([a.arrived_at for a in accepted])


def backfill_progress(carillon: Carillon, file: str) -> dict[str, Any]:
    answer = httpx.get(f"{carillon.base_url}/ops/segments", headers=ADMIN, timeout=30)
    answer.raise_for_status()
    rows = [row for row in answer.json() if row["file"].endswith(file)]
    if not rows or rows[0]["backfill"] is None:
        return {"done": 0, "total": 0, "finished": False}
    found: dict[str, Any] = rows[0]["backfill"]
    return found


BARE_BACKFILL = """
CREATE TEMP TABLE bare_traits (profile_id text, name text, value jsonb, expires_at timestamptz,
  updated_at timestamptz, PRIMARY KEY (profile_id, name));
CREATE TEMP TABLE bare_trait_events (profile_id text, name text, at timestamptz, value jsonb);
CREATE TEMP TABLE bare_members (profile_id text, segment_id text, stage boolean,
  entered_at timestamptz, PRIMARY KEY (profile_id, segment_id));
INSERT INTO bare_trait_events
  SELECT profile_id, 'bench_purchases_90d', timestamp, 'null'::jsonb FROM events
  WHERE type = 'track' AND name = %(event)s AND processed_at IS NOT NULL
    AND timestamp > now() - interval '90 days';
INSERT INTO bare_traits
  SELECT profile_id, 'bench_spend_max', to_jsonb(max((payload->'properties'->>'total')::numeric)),
    NULL, now()
  FROM events WHERE type = 'track' AND name = %(event)s AND processed_at IS NOT NULL
  GROUP BY profile_id;
INSERT INTO bare_traits
  SELECT p.id, 'bench_purchases_90d', to_jsonb(count(e.at)), min(e.at) + interval '90 days', now()
  FROM profiles p LEFT JOIN bare_trait_events e ON e.profile_id = p.id GROUP BY p.id;
INSERT INTO bare_members
  SELECT m.profile_id, 'bench-spenders', false, now()
  FROM bare_traits m JOIN bare_traits c ON c.profile_id = m.profile_id
    AND c.name = 'bench_purchases_90d'
  WHERE m.name = 'bench_spend_max' AND (m.value)::numeric >= 50 AND (c.value)::int >= 1;
"""


def bare_backfill(database_url: str) -> tuple[float, int]:
    """The same trait and membership rows as the backfill writes, by set-based SQL into
    scratch tables (rolled back): seconds, and the members it found."""
    with psycopg.connect(database_url) as conn:
        started = time.perf_counter()
        for statement in BARE_BACKFILL.split(";"):
            if statement.strip():
                conn.execute(statement, {"event": population.EVENT})  # type: ignore[arg-type]
        took = time.perf_counter() - started
        row = conn.execute("SELECT count(*) FROM bare_members").fetchone()
        conn.rollback()
    return took, row[0] if row else 0


def backfill(args: argparse.Namespace, workdir: Path) -> list[Line]:
    env = {**fresh_services(args), **SETTINGS, "CARILLON_ADMIN_TOKEN": ADMIN_TOKEN}
    segments = workdir / "backfill-segments"
    shutil.rmtree(segments, ignore_errors=True)
    shutil.copytree(REPO / "segments", segments)
    env["CARILLON_SEGMENTS_DIR"] = str(segments)
    url, people, sms = plain_url(env["CARILLON_DATABASE_URL"]), args.backfill_people, args.sms
    latency = args.provider_latency_ms[0]
    log = "standin-backfill.log"
    with warmed_up(workdir, env, latency, log, args.worker_processes) as (standin, carillon):
        copy_load = load_average()
        copied = population.load(url, people)
        print(
            f"    COPY {people:,} people: {copied:.1f} s, {people / copied:,.0f}/s "
            f"(load average {copy_load})",
            flush=True,
        )
        alone_load = load_average()
        alone = sms_rate(carillon, standin, range(sms))
        print(f"    SMS alone: {alone:.0f} msg/s (load average {alone_load})", flush=True)
        (segments / "bench_spenders.yaml").write_text(BACKFILLED)
        subprocess.run(
            [CARILLON, "segments", "reload"],
            env={**os.environ, **env},
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        started = time.monotonic()
        during_load = load_average()
        during = sms_rate(carillon, standin, range(sms, 2 * sms))
        meanwhile = backfill_progress(carillon, "bench_spenders.yaml")
        print(
            f"    SMS during the backfill: {during:.0f} msg/s (load average {during_load}); "
            f"backfill then at {meanwhile['done']:,}/{meanwhile['total']:,}",
            flush=True,
        )
        if meanwhile["finished"]:
            print("    (the backfill finished before the SMS load: the ratio is not 'during')")
        carillon.wait_until(
            "the backfill",
            lambda: bool(backfill_progress(carillon, "bench_spenders.yaml")["finished"]),
            args.backfill_timeout,
        )
        took, end_load = time.monotonic() - started, load_average()
    bare, members = bare_backfill(url)
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM segment_memberships WHERE segment_id = 'bench-spenders'"
        ).fetchone()
    ours = row[0] if row else 0
    how = (
        f"{people:,} people COPYed in {copied:.1f} s; backfill of a new file (2 traits, 1 rule) "
        f"{took:.1f} s, {people / took:,.0f} people/s, {ours:,} members (bare SQL: {members:,}) "
        f"with {sms} SMS sent meanwhile; load average {during_load} at the start, {end_load} "
        f"at the end"
    )
    print(f"    {how}", flush=True)
    return [
        Line(
            f"backfill of {people:,} people (s)",
            took,
            bare,
            "bare INSERT ... SELECT of the same rows",
            how,
        ),
        Line(
            "SMS end to end during the backfill (msg/s)",
            during,
            alone,
            "the same load just before it",
            f"{sms} people each, provider {latency:g} ms",
        ),
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("segments")
    group.add_argument("--segment-rate", type=float, default=1000, help="events/s posted")
    group.add_argument("--segment-seconds", type=float, default=30, help="for this long")
    group.add_argument("--expiry-people", type=int, default=200, help="windows that close")
    group.add_argument("--backfill-people", type=int, default=1_000_000, help="loaded by COPY")
    group.add_argument("--backfill-timeout", type=float, default=1800, help="seconds")
    group.add_argument("--sms", type=int, default=2_000, help="SMS per send load")


def measure(args: argparse.Namespace, workdir: Path) -> list[Line]:
    env = {
        **fresh_services(args),
        **SETTINGS,
        **directories(workdir),
        "CARILLON_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    url = plain_url(env["CARILLON_DATABASE_URL"])
    with running_carillon(
        workdir, env, PRODUCTION_ROLES, worker_processes=args.worker_processes
    ) as carillon:
        lines = membership(args, carillon, url)
        lines.append(expiry(args, carillon, url))
    return lines + backfill(args, workdir)
