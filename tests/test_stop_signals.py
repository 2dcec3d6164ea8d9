"""SIGTERM, what supervisors and container engines send to stop a process, ends each
long-running role promptly with exit code 0 once its work in flight is done.

The signal goes to the role's main process only, as container engines and systemd's
`KillMode=mixed` send it: dramatiq's worker processes take a second SIGTERM (from a signal to the
whole process group) as "kill now" (docs/deploy.md).

On PostgreSQL + Redis the production roles run (`api`, `worker`, `scheduler`); on the embedded
default, `serve`. tests/image checks the same of each role as a container's PID 1.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from app.settings import get_settings
from tests.processes import PRODUCTION_ROLES, SERVE, running_carillon

ROLES = PRODUCTION_ROLES if get_settings().redis_url else SERVE
# What each role logs once it runs, its SIGTERM handling in place.
READY = {
    "serve": "Application startup complete",
    "api": "Application startup complete",
    "worker": "Worker process is ready for action",
    "scheduler": "scheduler running",
}


@pytest.mark.parametrize("role", ROLES)
def test_sigterm_stops_the_role_with_exit_code_0(role: str, tmp_path: Path) -> None:
    with running_carillon(tmp_path, {}, [role]) as carillon:
        [process] = carillon.processes
        carillon.wait_until(f"{role} running", lambda: READY[role] in process.log.read_text())
        os.kill(process.popen.pid, signal.SIGTERM)
        try:
            returncode = process.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{role} still runs 10 s after SIGTERM\n{process.tail()}")
    assert returncode == 0, process.tail()
