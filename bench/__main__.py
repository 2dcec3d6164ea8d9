"""`make bench`: every throughput and latency figure beside a bound measured in the same run.

    .venv/bin/python -m bench [--messages 100000 --timers 1000000] [--only ingest ...]
    .venv/bin/python -m bench --only segments [--backfill-people 1000000]   # issue 14's targets
    .venv/bin/python -m bench --only backfill [--backfill-people 1000000]   # its backfill alone
    .venv/bin/python -m bench --only broadcast [--people 20000]             # issue 15's

Needs PostgreSQL and Redis (a scratch database, dropped and re-created for each measurement,
and a Redis database, flushed). About ten minutes on two cores with the defaults, which are
the pipeline's lines; the segments and broadcast parts (hours at their full sizes) run when
named.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench import broadcast, end_to_end, ingest, latency, segments, timers
from bench.common import arguments, load_average, machine
from bench.end_to_end import Sent
from bench.table import Line, number, render
from tests.processes import REPO

PIPELINE = ("ingest", "send", "latency", "timers", "embedded")
PARTS = (*PIPELINE, "broadcast", "segments", "backfill")  # backfill: the segments' last part


def commit() -> str:
    described = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True
    )
    return described.stdout.strip() or "unknown"


def memory_table(runs: list[Sent]) -> str:
    rows = [
        f"  {process:<24} {mib:>7.0f} MiB   ({sent.line.name})"
        for sent in runs
        for process, mib in sent.resident_mib.items()
    ]
    return "\n".join(["Resident memory at the end of each end-to-end run:", *rows])


def main() -> None:
    parser = arguments(__doc__ or "")
    for module in (ingest, end_to_end, latency, timers, broadcast, segments):
        module.add_arguments(parser)
    parser.add_argument("--only", nargs="+", choices=PARTS, default=PIPELINE, help="measure these")
    parser.add_argument("--logs", type=Path, help="keep the processes' logs here")
    args = parser.parse_args()
    print(f"Carillon at {commit()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"machine: {machine()}; load average {load_average()} at the start")
    lines: list[Line] = []
    sent: list[Sent] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as scratch:
        workdir = args.logs or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)

        def send(run: Callable[..., Sent], latency_ms: float) -> list[Line]:
            sent.append(run(args, workdir, latency_ms))
            return [sent[-1].line]

        steps: list[tuple[str, Callable[[], list[Line]]]] = [
            ("ingest", lambda: [ingest.measure(args, workdir)]),
            *[
                ("send", lambda ms=ms: send(end_to_end.production, ms))
                for ms in args.provider_latency_ms
            ],
            ("latency", lambda: latency.measure(args, workdir)),
            ("timers", lambda: [timers.measure(args, workdir)]),
            ("embedded", lambda: send(end_to_end.embedded, args.provider_latency_ms[0])),
            ("broadcast", lambda: broadcast.measure(args, workdir)),
            ("segments", lambda: segments.measure(args, workdir)),
            ("backfill", lambda: segments.backfill(args, workdir)),
        ]
        for part, run in steps:
            if part in args.only:
                print(f"... {part}", flush=True)
                for line in run():  # as they come: a later failure must not lose them
                    print(f"    {line.name}: {number(line.carillon)} (bound {number(line.bound)})")
                    lines.append(line)
    print()
    print(render(lines))
    if sent:
        print()
        print(memory_table(sent))
    print(f"\n{time.monotonic() - started:.0f} s; load average {load_average()} at the end")


if __name__ == "__main__":
    main()
