"""Metrics of `carillon worker`: dramatiq forks several worker processes, each with its own
memory, so their counters and histograms go through prometheus_client's multiprocess mode
(one memory-mapped file per process in a fresh directory), and dramatiq's Prometheus
middleware serves the sum of them on one port from a forked exposition process.

`enable()` runs in `carillon worker` before it execs dramatiq, so every worker process starts
with the environment set, before prometheus_client is first imported (it picks its storage
then). `app.tasks` adds the middleware when it sees ENABLED.
"""

from __future__ import annotations

import os
import tempfile

ENABLED = "CARILLON_WORKER_METRICS"


def enable(host: str, port: int) -> None:
    directory = tempfile.mkdtemp(prefix="carillon-worker-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    # dramatiq's spelling of its Prometheus middleware settings.
    os.environ["dramatiq_prom_db"] = directory  # noqa: SIM112
    os.environ["dramatiq_prom_host"] = host  # noqa: SIM112
    os.environ["dramatiq_prom_port"] = str(port)  # noqa: SIM112
    os.environ[ENABLED] = "1"


def wanted() -> bool:
    return os.environ.get(ENABLED) == "1"
