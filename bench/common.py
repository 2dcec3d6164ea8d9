"""What the benchmarks share: a scratch PostgreSQL database, Redis, and result reporting."""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import statistics
import subprocess
from collections.abc import Sequence
from pathlib import Path

import psycopg
import redis

from tests.processes import CARILLON

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_DATABASE = "carillon_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"


def arguments(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--admin-url",
        default=DEFAULT_ADMIN_URL,
        help="PostgreSQL server to create the scratch database on",
    )
    parser.add_argument(
        "--database",
        default=DEFAULT_DATABASE,
        help="scratch database: DROPPED and re-created on every run",
    )
    parser.add_argument(
        "--redis-url", default=DEFAULT_REDIS_URL, help="Redis database to use: FLUSHED on every run"
    )
    parser.add_argument("--runs", type=int, default=5, help="repetitions; medians are reported")
    return parser


def fresh_services(args: argparse.Namespace) -> dict[str, str]:
    """Re-create the scratch database with Carillon's schema and empty Redis; returns the
    environment that points Carillon at them."""
    with psycopg.connect(args.admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{args.database}"')
    redis.Redis.from_url(args.redis_url).flushdb()
    base = args.admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    env = {
        "CARILLON_DATABASE_URL": f"{base}/{args.database}",
        "CARILLON_REDIS_URL": args.redis_url,
        "CARILLON_LOG_LEVEL": "WARNING",
        # Measure the pipeline, not the policy: no quiet hours whatever the hour of the run.
        "CARILLON_QUIET_HOURS": "",
        # The production roles refuse to start without the shared signing key.
        "CARILLON_SECRET_KEY": secrets.token_urlsafe(32),
    }
    subprocess.run(
        [CARILLON, "db", "upgrade"], env={**os.environ, **env}, check=True, capture_output=True
    )
    return env


def percentile(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    cpu = next(
        (line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
        platform.processor(),
    )
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}"


def median(values: Sequence[float]) -> float:
    return statistics.median(values)
