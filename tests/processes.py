"""Carillon as real processes (`carillon serve`, or `api` + `worker` + `scheduler`) pointed at
local provider servers: shared by the end-to-end test and the benchmarks."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.providers.meta import MetaGraphServer
from tests.providers.sendgrid import SendGridServer
from tests.providers.server import unused_port
from tests.providers.twilio import TwilioServer

REPO = Path(__file__).resolve().parent.parent
CARILLON = str(Path(sys.executable).parent / "carillon")
WRITE_KEY = "test-key"


def fast_journeys(target: Path) -> Path:
    """The shipped journeys with every wait shortened to 2 s, so a run needs no hour."""
    target.mkdir(parents=True, exist_ok=True)
    for source in (REPO / "journeys").glob("*.yaml"):
        text = re.sub(r"^(\s*-\s*wait:\s*)\S+$", r"\g<1>2s", source.read_text(), flags=re.M)
        (target / source.name).write_text(text)
    return target


@dataclass
class Providers:
    sendgrid: SendGridServer = field(default_factory=SendGridServer)
    twilio: TwilioServer = field(default_factory=TwilioServer)
    meta: MetaGraphServer = field(default_factory=MetaGraphServer)

    def env(self) -> dict[str, str]:
        overrides: dict[str, Any] = {
            **self.sendgrid.settings_overrides(),
            **self.twilio.settings_overrides(),
            **self.meta.settings_overrides(),
        }
        return {f"CARILLON_{k.upper()}": str(v) for k, v in overrides.items() if v is not None}


@contextmanager
def provider_servers() -> Iterator[Providers]:
    providers = Providers()
    with providers.sendgrid, providers.twilio, providers.meta:
        yield providers


class Process:
    """One Carillon command, its output in a log file, stopped with SIGTERM like a supervisor."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.command = " ".join(["carillon", *args])
        self._out = log.open("wb")
        self.popen = subprocess.Popen(
            [CARILLON, *args],
            env=env,
            cwd=REPO,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 20) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self._out.close()


def wait_until(
    what: str, check: Callable[[], bool], timeout: float, processes: list[Process]
) -> None:
    """Poll `check` until true; fail with the processes' logs if it never is or one died."""
    deadline = time.monotonic() + timeout
    while not check():
        dead = [p for p in processes if p.popen.poll() is not None]
        if dead or time.monotonic() > deadline:
            logs = "\n\n".join(f"$ {p.command}\n{p.tail()}" for p in processes)
            reason = "a process exited" if dead else f"not within {timeout}s"
            raise AssertionError(f"{what}: {reason}\n{logs}")
        time.sleep(0.05)


@dataclass
class Carillon:
    base_url: str
    processes: list[Process]

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{self.base_url}{path}", json=body, auth=(WRITE_KEY, ""), timeout=30)

    def wait_until(self, what: str, check: Callable[[], bool], timeout: float = 60) -> None:
        wait_until(what, check, timeout, self.processes)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


SERVE = ("serve",)
PRODUCTION_ROLES = ("api", "worker", "scheduler")


@contextmanager
def running_carillon(
    workdir: Path, env: dict[str, str], roles: Sequence[str] = SERVE, *, worker_processes: int = 1
) -> Iterator[Carillon]:
    """Start the given commands: `serve` alone (embedded), or any of `api`, `worker` and
    `scheduler` as in production (PostgreSQL and Redis must then be in `env`)."""
    port = unused_port()
    full_env = {
        **os.environ,
        "CARILLON_WRITE_KEYS": WRITE_KEY,
        "CARILLON_SCHEDULER_INTERVAL_SECONDS": "0.2",
        **env,
    }
    options = {
        "serve": ["--host", "127.0.0.1", "--port", str(port)],
        "api": ["--host", "127.0.0.1", "--port", str(port)],
        "worker": ["--processes", str(worker_processes), "--threads", "4"],
        "scheduler": [],
    }
    with ExitStack() as stack:
        processes = []
        for role in roles:
            process = Process([role, *options[role]], full_env, workdir / f"{role}.log")
            stack.callback(process.stop)
            processes.append(process)
        carillon = Carillon(f"http://127.0.0.1:{port}", processes)
        if {"serve", "api"} & set(roles):
            carillon.wait_until("API up", lambda: _healthy(carillon.base_url))
        yield carillon
