"""Resident memory of Carillon's processes and the processes they started (a `carillon worker`
forks its worker processes), read from /proc."""

from __future__ import annotations

from pathlib import Path

from tests.processes import Process

PROC = Path("/proc")


def _children(pid: int) -> list[int]:
    found = []
    for stat in PROC.glob("[0-9]*/stat"):
        try:
            # The parent's pid is the 2nd field after the command, which may hold spaces.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return sorted(found)


def rss_mib(pid: int) -> float:
    for line in (PROC / str(pid) / "status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def resident(processes: list[Process]) -> dict[str, float]:
    """MiB per process: `carillon worker` and each of its worker processes apart."""
    sizes: dict[str, float] = {}
    for process in processes:
        sizes[process.command.split()[1]] = rss_mib(process.popen.pid)
        for number, child in enumerate(_children(process.popen.pid), start=1):
            sizes[f"{process.command.split()[1]} child {number}"] = rss_mib(child)
    return sizes
