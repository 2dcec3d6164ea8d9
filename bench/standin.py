"""The Twilio stand-in (`tests/providers/twilio.py`: the real wire format, requests checked
against Twilio's OpenAPI document) as a process of its own, answering after a set latency.

Its own process, so that its threads do not share an interpreter lock with the load generator
or the direct client: the stand-in costs what it costs, the same for Carillon and for the
bound. It records when each accepted message arrived and when its answer left (monotonic
clock, shared by every process of the machine), which the benchmark takes with
`POST /_bench/drain`: the rows since the last drain, every record then forgotten so an hour
of messages does not pile up in the stand-in.

    .venv/bin/python -m bench.standin --latency-ms 50     # prints its base URL, then serves
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.providers.server import RecordedRequest, Reply
from tests.providers.twilio import (
    TEST_ACCOUNT_SID,
    TEST_AUTH_TOKEN,
    TEST_FROM_NUMBER,
    TwilioServer,
)

CONTROL = "/_bench/"


@dataclass(frozen=True)
class Accepted:
    """One message the stand-in accepted: its recipient, when it arrived, when it was answered."""

    to: str
    arrived_at: float
    answered_at: float


class TimedTwilio(TwilioServer):
    def __init__(self, latency_seconds: float) -> None:
        super().__init__(latency_seconds=latency_seconds)
        self.accepted: list[tuple[str, float, float]] = []

    def respond(self, request: RecordedRequest) -> Reply:
        if request.path.startswith(CONTROL):
            return self._control(request)
        reply = super().respond(request)
        if reply.status == 201:
            with self._condition:
                self.accepted.append((request.body["To"], request.arrived_at, time.monotonic()))
        return reply

    def _control(self, request: RecordedRequest) -> Reply:
        if request.path != CONTROL + "drain":
            return Reply(404)
        with self._condition:
            drained, self.accepted = self.accepted, []
            self.reset()
        return Reply.json(200, drained)


class StandIn:
    """The stand-in process, seen from the benchmark."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.client = httpx.Client(base_url=base_url, timeout=30)

    def env(self) -> dict[str, str]:
        """What points Carillon's SMS channel at it."""
        return {
            "CARILLON_TWILIO_ACCOUNT_SID": TEST_ACCOUNT_SID,
            "CARILLON_TWILIO_AUTH_TOKEN": TEST_AUTH_TOKEN,
            "CARILLON_TWILIO_FROM_NUMBER": TEST_FROM_NUMBER,
            "CARILLON_TWILIO_BASE_URL": self.base_url,
        }

    def drain(self) -> list[Accepted]:
        """The messages accepted since the last drain."""
        response = self.client.post(CONTROL + "drain")
        response.raise_for_status()
        return [Accepted(*row) for row in response.json()]

    def wait_for(self, count: int, stall_seconds: float = 60) -> list[Accepted]:
        """The messages accepted from now on, once `count` arrived or once none arrived for
        `stall_seconds` (the caller reports the missing ones)."""
        seen: list[Accepted] = []
        progress = time.monotonic()
        while len(seen) < count and time.monotonic() - progress < stall_seconds:
            fresh = self.drain()
            if fresh:
                seen += fresh
                progress = time.monotonic()
            else:
                time.sleep(0.2)  # polling a counter, not synchronising
        return seen


@contextmanager
def running_standin(latency_ms: float, log: Path) -> Iterator[StandIn]:
    """Start the stand-in process; stopped with SIGTERM on exit."""
    with log.open("wb") as errors:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.standin", "--latency-ms", str(latency_ms)],
            stdout=subprocess.PIPE,
            stderr=errors,
            cwd=Path(__file__).resolve().parent.parent,
        )
        try:
            assert process.stdout is not None
            base_url = process.stdout.readline().decode().strip()
            if not base_url:
                raise RuntimeError(f"the Twilio stand-in did not start:\n{log.read_text()}")
            standin = StandIn(base_url)
            yield standin
            standin.client.close()
        finally:
            process.terminate()
            process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stopped.set())
    with TimedTwilio(args.latency_ms / 1000) as server:
        print(server.base_url, flush=True)
        stopped.wait()


if __name__ == "__main__":
    main()
