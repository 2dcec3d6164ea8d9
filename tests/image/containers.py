"""Carillon's image run as real containers through podman's command line, on the host network
so that containers reach this machine's PostgreSQL, Redis and the provider stand-ins (or on
the engine's default network, one port published).

Every container runs as production would: read-only root filesystem, the image's own user.
Whatever a test creates is recorded and removed at the end, by id.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ENGINE = os.environ.get("CARILLON_IMAGE_ENGINE", "podman")
IMAGE = os.environ.get("CARILLON_IMAGE", "carillon:latest")
# Limits this machine lets root set in a container (Makefile: CONTAINER_ULIMITS); unset, the
# engine's defaults.
ULIMITS = os.environ.get("CONTAINER_ULIMITS", "").split()


def engine(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ENGINE, *args], capture_output=True, text=True, check=check, timeout=timeout
    )


@dataclass
class Container:
    id: str
    command: str

    def logs(self) -> str:
        done = engine("logs", self.id, check=False)
        return done.stdout + done.stderr

    def state(self) -> dict[str, Any]:
        [inspected] = json.loads(engine("inspect", self.id).stdout)
        state: dict[str, Any] = inspected["State"]
        return state

    def ended(self) -> bool:
        """Exited (a container being stopped is not "running" any more, but not ended yet)."""
        return self.state()["Status"] in ("exited", "dead")

    def exit_code(self) -> int:
        return int(self.state()["ExitCode"])

    def stop(self, grace: int = 10) -> tuple[int, float]:
        """`podman stop`: SIGTERM, SIGKILL after `grace` seconds. Returns the exit code and how
        long the container took to end."""
        started = time.monotonic()
        engine("stop", "-t", str(grace), self.id, timeout=grace + 60)
        return self.exit_code(), time.monotonic() - started

    def wait(self, timeout: float = 60) -> int:
        done = engine("wait", self.id, timeout=timeout)
        return int(done.stdout.strip().splitlines()[-1])

    def wait_until(self, what: str, check: Callable[[], bool], timeout: float = 90) -> None:
        """Poll `check` until true; fail with the container's log if it never is or it ended."""
        deadline = time.monotonic() + timeout
        while not check():
            ended = self.ended()
            if ended or time.monotonic() > deadline:
                reason = "the container ended" if ended else f"not within {timeout}s"
                raise AssertionError(f"{what}: {reason}\n$ {self.command}\n{self.logs()[-4000:]}")
            time.sleep(0.2)


@dataclass
class Containers:
    """Starts containers of the image and removes them (and their anonymous volumes) at the end."""

    env: dict[str, str] = field(default_factory=dict)
    created: list[Container] = field(default_factory=list)

    def run(
        self, *command: str, env: dict[str, str] | None = None, publish: int | None = None
    ) -> Container:
        """Create and start a container running `carillon <command>` (the image's own command
        when none), on the host network, or on its own with port 8000 published on `publish`."""
        network = ["-p", f"127.0.0.1:{publish}:8000"] if publish else ["--network", "host"]
        args = ["create", *network, "--read-only"]
        args += [f"--ulimit={limit}" for limit in ULIMITS]
        for name, value in {**self.env, **(env or {})}.items():
            args += ["-e", f"{name}={value}"]
        # Not --rm: the exit code and the log are read after the container ended.
        created = engine(*args, IMAGE, *command)
        container = Container(created.stdout.strip().splitlines()[-1], " ".join(command) or IMAGE)
        self.created.append(container)
        engine("start", container.id)
        return container

    def remove_all(self) -> None:
        for container in reversed(self.created):
            engine("rm", "--force", "--volumes", container.id, check=False)
        self.created.clear()
