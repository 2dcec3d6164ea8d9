"""`make bench-soak` (not in CI): the latency load of `bench/latency.py` held for `--minutes`
(default 30) at `--rate` events/s; p99 latency and resident memory of each process in the
first and in the last `--window-minutes` (default 5). A leak or a growing backlog shows as a
ratio above 1.

    .venv/bin/python -m bench.soak [--minutes 30] [--rate 200]
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

from bench import latency, memory
from bench.common import arguments, load_average, machine
from bench.figures import percentile
from bench.table import Line, render

SAMPLE_SECONDS = 10.0


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def main() -> None:
    parser = arguments(__doc__ or "")
    latency.add_arguments(parser)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--window-minutes", type=float, default=5)
    args = parser.parse_args()
    args.latency_seconds = args.minutes * 60
    window = args.window_minutes * 60
    print(f"machine: {machine()}; load average {load_average()} at the start", flush=True)
    samples: list[tuple[float, dict[str, float]]] = []
    stop = threading.Event()
    with (
        tempfile.TemporaryDirectory() as workdir,
        latency.production(args, Path(workdir)) as (standin, carillon),
    ):

        def sample() -> None:
            while not stop.wait(SAMPLE_SECONDS):  # a clock for the sampling, not a wait
                samples.append((time.monotonic(), memory.resident(carillon.processes)))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        posted = latency.steady(carillon, args.rate, args.latency_seconds)
        stop.set()
        sampler.join()
        accepted = standin.wait_for(len(posted.started))
    begin, end = min(posted.started.values()), max(posted.started.values())
    by_start = [(posted.started[a.to], a.arrived_at - posted.started[a.to]) for a in accepted]
    first = [seconds * 1000 for at, seconds in by_start if at < begin + window]
    last = [seconds * 1000 for at, seconds in by_start if at >= end - window]
    lines = [Line("event -> SMS p99 (ms)", percentile(last, 99), percentile(first, 99), "")]
    for process in samples[0][1]:
        early = [sizes[process] for at, sizes in samples if at < begin + window]
        late = [sizes[process] for at, sizes in samples if at >= end - window]
        lines.append(Line(f"RSS {process} (MiB)", mean(late), mean(early), ""))
    minutes = f"{args.window_minutes:g} min"
    print(render(lines, columns=(f"last {minutes}", f"first {minutes}")))
    missing = len(posted.started) - len(accepted)
    print(
        f"\n{args.minutes:g} min at {posted.events_per_second:.0f} events/s posted, "
        f"{len(posted.started)} SMS asked for, {missing} missing; provider "
        f"{args.latency_provider_ms:g} ms; load average {load_average()} at the end"
    )


if __name__ == "__main__":
    main()
