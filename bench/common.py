"""What the benchmarks share: a scratch PostgreSQL database, Redis, processes of their own."""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import redis

from tests.processes import CARILLON, REPO

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_DATABASE = "carillon_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"


def arguments(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--admin-url",
        default=DEFAULT_ADMIN_URL,
        help="PostgreSQL server to create the scratch database on",
    )
    parser.add_argument(
        "--database",
        default=DEFAULT_DATABASE,
        help="scratch database: DROPPED and re-created for every measurement",
    )
    parser.add_argument(
        "--redis-url",
        default=DEFAULT_REDIS_URL,
        help="Redis database to use: FLUSHED for every measurement",
    )
    parser.add_argument(
        "--worker-processes", type=int, default=2, help="`carillon worker --processes`"
    )
    return parser


def scratch_database(args: argparse.Namespace) -> str:
    """Drop and re-create `--database` on the `--admin-url` server; its URL for Carillon."""
    with psycopg.connect(args.admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{args.database}"')
    base = args.admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    return f"{base}/{args.database}"


def fresh_services(args: argparse.Namespace) -> dict[str, str]:
    """Re-create the scratch database with Carillon's schema and empty Redis; returns the
    environment that points Carillon at them."""
    database_url = scratch_database(args)
    redis.Redis.from_url(args.redis_url).flushdb()
    env = {
        "CARILLON_DATABASE_URL": database_url,
        "CARILLON_REDIS_URL": args.redis_url,
        **quiet_settings(),
        # The production roles refuse to start without the shared signing key.
        "CARILLON_SECRET_KEY": secrets.token_urlsafe(32),
    }
    subprocess.run(
        [CARILLON, "db", "upgrade"], env={**os.environ, **env}, check=True, capture_output=True
    )
    return env


def quiet_settings() -> dict[str, str]:
    """Measure the pipeline, not the policy or the logs: no quiet hours whatever the hour of
    the run, warnings only."""
    return {"CARILLON_LOG_LEVEL": "WARNING", "CARILLON_QUIET_HOURS": ""}


def plain_url(database_url: str) -> str:
    """psycopg's spelling of a SQLAlchemy PostgreSQL URL."""
    return database_url.replace("postgresql+psycopg://", "postgresql://")


@contextmanager
def running_python(
    args: Sequence[str], env: dict[str, str], log: Path, health_url: str
) -> Iterator[subprocess.Popen[bytes]]:
    """`python ARGS` (the venv's) until the block ends, up once `health_url` answers 200."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, *args],
            env={**os.environ, **env},
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 30
            while not _answers(health_url):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"python {' '.join(args)} not up:\n{log.read_text()}")
                time.sleep(0.05)
            yield process
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(20)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    cpu = next(
        (line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
        platform.processor(),
    )
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}"


def load_average() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())
