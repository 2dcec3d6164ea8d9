"""The container image, built by `make image`, run as real containers (`make image-test`).

- The image's own command, `carillon serve`: /healthz, /readyz, its HEALTHCHECK, and one
  event becomes one dry-run delivery.
- The production roles, each in its own container (`db upgrade`, `api`, `worker`,
  `scheduler`) on this machine's PostgreSQL and Redis: the newsletter journey from
  POST /v1/track to the Twilio stand-in; SIGTERM (`podman stop`) ends each role in its grace
  period with exit code 0, the worker only once the send in flight is done.
- Bad input: a missing required setting, a database that goes away, a second migration.
- compose.yaml: valid, and its services, healthchecks and dependencies are the roles above.

The tests of the production stack share one set of containers and run in file order: the
later ones stop the roles the earlier ones use.

CARILLON_IMAGE_TEST_DATABASE (default `carillon_image`) is DROPPED and re-created on
127.0.0.1:5432; CARILLON_IMAGE_TEST_REDIS_DB (default 11) of 127.0.0.1:6379 is FLUSHED.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis
from ruamel.yaml import YAML

from tests.image.containers import IMAGE, ULIMITS, Container, Containers, engine
from tests.providers.server import RecordedRequest, Reply, unused_port
from tests.providers.twilio import TwilioServer

pytestmark = [pytest.mark.image, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
DATABASE = os.environ.get("CARILLON_IMAGE_TEST_DATABASE", "carillon_image")
REDIS_URL = f"redis://127.0.0.1:6379/{os.environ.get('CARILLON_IMAGE_TEST_REDIS_DB', '11')}"
WRITE_KEY = "image-test-key"
ADMIN_TOKEN = secrets.token_urlsafe(24)
MAX_IMAGE_BYTES = 250_000_000
# What each role logs once it runs with its SIGTERM handling in place.
RUNNING = {
    "api": "Application startup complete",
    "worker": "Worker process is ready for action",
    "scheduler": "scheduler running",
}


class HeldTwilio(TwilioServer):
    """The Twilio stand-in, whose answers wait while `hold` is on: a send in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.released = threading.Event()
        self.released.set()

    def hold(self) -> None:
        self.released.clear()

    def release(self) -> None:
        self.released.set()

    def respond(self, request: RecordedRequest) -> Reply:
        self.released.wait(timeout=60)
        return super().respond(request)


def now() -> str:
    return datetime.now(UTC).isoformat()


def person(user: str, phone: str) -> dict[str, Any]:
    traits = {"first_name": user.title(), "phone": phone, "sms_opt_in": True}
    return {"userId": user, "traits": traits, "timestamp": now()}


@dataclass
class Api:
    base_url: str

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{self.base_url}{path}", json=body, auth=(WRITE_KEY, ""), timeout=30)

    def get(self, path: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        return httpx.get(f"{self.base_url}{path}", headers=headers, timeout=10)

    def answers(self, path: str, status: int = 200) -> bool:
        try:
            return self.get(path).status_code == status
        except httpx.HTTPError:
            return False

    def delivery_status(self, delivery_id: int) -> str | None:
        answer = self.get(f"/ops/deliveries/{delivery_id}")
        return str(answer.json()["status"]) if answer.status_code == 200 else None

    def events_waiting(self) -> int:
        queues = self.get("/ops/queues").json()["queues"]
        return int(next(q for q in queues if q["name"] == "events")["backlog"]["waiting"])

    def subscribe(self, user: str, phone: str, running: Container) -> None:
        """Identify, then subscribe once the identify is routed: events are routed
        concurrently, and a message is written with the traits known when it is planned."""
        assert self.post("/v1/identify", person(user, phone)).status_code == 200
        running.wait_until("identify routed", lambda: self.events_waiting() == 0)
        track = {"userId": user, "event": "Newsletter Subscribed", "timestamp": now()}
        assert self.post("/v1/track", track).status_code == 200


def common_env() -> dict[str, str]:
    return {
        "CARILLON_WRITE_KEYS": WRITE_KEY,
        "CARILLON_ADMIN_TOKEN": ADMIN_TOKEN,
        # Whatever the hour of the run: the default keeps SMS for the morning.
        "CARILLON_QUIET_HOURS": "",
    }


@pytest.fixture(scope="module")
def containers() -> Iterator[Containers]:
    made = Containers(env=common_env())
    yield made
    made.remove_all()


@pytest.fixture(scope="module")
def twilio() -> Iterator[HeldTwilio]:
    with HeldTwilio() as server:
        yield server


@pytest.fixture(scope="module")
def production_env(twilio: HeldTwilio) -> dict[str, str]:
    """A fresh database and Redis db; the Twilio stand-in as the SMS provider."""
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        db.execute(f'CREATE DATABASE "{DATABASE}"')
    redis.Redis.from_url(REDIS_URL).flushdb()
    overrides = twilio.settings_overrides()
    return {
        "CARILLON_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/{DATABASE}",
        "CARILLON_REDIS_URL": REDIS_URL,
        "CARILLON_SECRET_KEY": secrets.token_hex(32),
        **{f"CARILLON_{k.upper()}": str(v) for k, v in overrides.items() if v is not None},
    }


@dataclass
class Stack:
    api: Api
    roles: dict[str, Container]
    metrics_port: int

    def newest_delivery(self) -> int:
        """The id of the latest delivery, read from the database the roles share."""
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{DATABASE}") as db:
            row = db.execute("SELECT max(id) FROM deliveries").fetchone()
        assert row is not None and row[0] is not None, "no delivery yet"
        return int(row[0])

    def subscribe(self, user: str, phone: str) -> None:
        self.api.subscribe(user, phone, self.roles["worker"])


@pytest.fixture(scope="module")
def stack(containers: Containers, production_env: dict[str, str]) -> Stack:
    migrate = containers.run("db", "upgrade", env=production_env)
    assert migrate.wait() == 0, migrate.logs()
    port, metrics_port = unused_port(), unused_port()
    options = {
        "api": ["--host", "127.0.0.1", "--port", str(port)],
        "worker": ["--processes", "1", "--threads", "2", "--metrics-port", str(metrics_port)],
        "scheduler": [],
    }
    roles = {
        role: containers.run(role, *args, env=production_env) for role, args in options.items()
    }
    for role, container in roles.items():
        container.wait_until(f"{role} running", lambda c=container, r=role: RUNNING[r] in c.logs())
    return Stack(Api(f"http://127.0.0.1:{port}"), roles, metrics_port)


# ------------------------------------------------------------------------------ the image


def test_image_is_small_runs_as_its_own_user_and_has_a_healthcheck() -> None:
    [inspected] = json.loads(engine("image", "inspect", IMAGE).stdout)
    assert inspected["Size"] < MAX_IMAGE_BYTES, f"{inspected['Size'] / 1e6:.0f} MB"
    config = inspected["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["carillon"]
    assert "/data" in config["Volumes"]
    healthcheck = inspected.get("Healthcheck") or config["Healthcheck"]  # podman or Docker
    assert "/healthz" in " ".join(healthcheck["Test"])


def test_no_compiler_pip_or_pip_cache_in_the_image() -> None:
    look = "command -v gcc cc c++ strip pip pip3; ls -d /root/.cache /opt/venv/bin/pip* 2>&-"
    ulimits = [f"--ulimit={limit}" for limit in ULIMITS]
    found = engine("run", "--rm", *ulimits, "--entrypoint", "sh", IMAGE, "-c", look, check=False)
    assert found.stdout.strip() == ""


def test_the_image_ships_the_segment_files_where_its_setting_points() -> None:
    found = engine(
        "run",
        "--rm",
        *[f"--ulimit={limit}" for limit in ULIMITS],
        IMAGE,
        "segments",
        "validate",
        check=False,
    )
    assert found.returncode == 0, found.stderr
    assert "ok  /app/segments/lifecycle.yaml: lifecycle (stages" in found.stdout


# ------------------------------------------------------------------------------ serve


def test_serve_answers_and_turns_an_event_into_one_dry_run_delivery(
    containers: Containers,
) -> None:
    port = unused_port()
    serve = containers.run(publish=port)  # the image's own command: serve on port 8000
    api = Api(f"http://127.0.0.1:{port}")
    serve.wait_until("serve ready", lambda: api.answers("/readyz"))
    assert api.answers("/healthz")
    assert engine("healthcheck", "run", serve.id, check=False).returncode == 0

    api.subscribe("lea", "+33612345678", serve)
    serve.wait_until("the delivery is made", lambda: api.delivery_status(1) == "dry_run")
    assert api.delivery_status(2) is None  # one event, one delivery

    exit_code, took = serve.stop()
    assert (exit_code, took < 10) == (0, True), serve.logs()[-3000:]


# ------------------------------------------------------------------------------ production


def test_newsletter_signup_reaches_twilio_through_the_production_roles(
    stack: Stack, twilio: HeldTwilio
) -> None:
    assert stack.api.answers("/readyz")
    stack.subscribe("carol", "+33622222222")
    [sms] = twilio.wait_for_requests(1, timeout=60)
    assert sms.path == f"/2010-04-01/Accounts/{twilio.account_sid}/Messages.json"
    assert sms.body["To"] == "+33622222222"
    assert sms.body["Body"].startswith("Bienvenue Carol !")
    delivery = stack.newest_delivery()
    api = stack.roles["api"]
    api.wait_until(
        "delivery recorded as sent", lambda: stack.api.delivery_status(delivery) == "sent"
    )


def test_the_workers_metrics_port_answers_its_healthcheck(stack: Stack) -> None:
    """compose.yaml's worker healthcheck, run inside the worker's read-only container."""
    url = f"http://127.0.0.1:{stack.metrics_port}/metrics"
    probe = f"import urllib.request; urllib.request.urlopen({url!r}, timeout=2)"
    worker = stack.roles["worker"]
    worker.wait_until(
        "metrics answer",
        lambda: engine("exec", worker.id, "python", "-c", probe, check=False).returncode == 0,
    )


def test_a_second_migration_changes_nothing(
    containers: Containers, production_env: dict[str, str], stack: Stack
) -> None:
    again = containers.run("db", "upgrade", env=production_env)
    assert again.wait() == 0, again.logs()
    assert "Running upgrade" not in again.logs()
    assert "database is up to date" in again.logs()


def test_sigterm_lets_the_worker_finish_the_send_in_flight(
    stack: Stack, twilio: HeldTwilio
) -> None:
    worker = stack.roles["worker"]
    sent_before = len(twilio.requests)
    twilio.hold()
    stack.subscribe("dave", "+33633333333")
    twilio.wait_for_requests(sent_before + 1, timeout=60)  # the worker waits for the answer
    delivery = stack.newest_delivery()

    stopped: list[tuple[int, float]] = []
    stopping = threading.Thread(target=lambda: stopped.append(worker.stop(grace=30)))
    stopping.start()
    try:
        worker.wait_until("worker told to stop", lambda: "Stopping worker process" in worker.logs())
        assert stack.api.delivery_status(delivery) == "sending"
    finally:
        twilio.release()
        stopping.join(timeout=90)
    [(exit_code, took)] = stopped
    assert exit_code == 0, worker.logs()[-3000:]
    assert took < 30
    assert stack.api.delivery_status(delivery) == "sent"
    assert len(twilio.requests) == sent_before + 1


@pytest.mark.parametrize("role", ["api", "scheduler"])
def test_sigterm_stops_the_role_with_exit_code_0(role: str, stack: Stack) -> None:
    container = stack.roles[role]
    exit_code, took = container.stop()
    assert exit_code == 0, container.logs()[-3000:]
    assert took < 10


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("role", ["api", "worker", "scheduler"])
def test_a_role_without_its_secret_key_exits_at_once_naming_it(
    role: str, production_env: dict[str, str]
) -> None:
    env = {k: v for k, v in production_env.items() if k != "CARILLON_SECRET_KEY"}
    containers = Containers(env={**common_env(), **env})
    try:
        started = time.monotonic()
        container = containers.run(role)
        assert container.wait(timeout=60) == 2
        assert time.monotonic() - started < 20
        lines = [line for line in container.logs().splitlines() if line.strip()]
        assert len(lines) == 1, lines
        assert "CARILLON_SECRET_KEY" in lines[0]
    finally:
        containers.remove_all()


class Severable:
    """A TCP relay to PostgreSQL that the test can cut: the database goes away under a running
    API without stopping the machine's PostgreSQL for everyone else."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                end.close()

    def cut(self) -> None:
        with self.lock:
            for sock in [self.listener, *self.sockets]:  # shutdown() wakes a blocked accept()
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


def test_a_lost_database_makes_readyz_503_with_the_reason_while_healthz_stays_200(
    containers: Containers, production_env: dict[str, str], stack: Stack
) -> None:
    relay = Severable(("127.0.0.1", 5432))
    port = unused_port()
    url = f"postgresql+psycopg://postgres@127.0.0.1:{relay.port}/{DATABASE}"
    container = containers.run(
        "api",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        env={**production_env, "CARILLON_DATABASE_URL": url},
    )
    api = Api(f"http://127.0.0.1:{port}")
    container.wait_until("api ready", lambda: api.answers("/readyz"))
    relay.cut()
    container.wait_until("readyz 503", lambda: api.answers("/readyz", 503))
    answer = api.get("/readyz").json()
    assert answer["status"] == "unavailable"
    assert answer["reason"].startswith("database unreachable")
    assert answer["checks"]["broker"] == "ok"
    assert api.answers("/healthz")
    exit_code, _ = container.stop()
    assert exit_code == 0, container.logs()[-3000:]


# ------------------------------------------------------------------------------ compose


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    podman_compose = str(Path(sys.executable).parent / "podman-compose")
    return subprocess.run(
        [podman_compose, "-f", str(REPO / "compose.yaml"), "config"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=REPO,
        timeout=60,
    )


def test_compose_runs_the_roles_with_their_healthchecks_and_dependencies() -> None:
    key = secrets.token_hex(32)
    done = compose_config({"CARILLON_SECRET_KEY": key})
    assert done.returncode == 0, done.stderr
    services = YAML(typ="safe").load(done.stdout)["services"]
    assert set(services) == {"postgres", "redis", "migrate", "api", "worker", "scheduler"}
    assert "pg_isready" in str(services["postgres"]["healthcheck"]["test"])
    assert "ping" in services["redis"]["healthcheck"]["test"]

    migrate = services["migrate"]
    assert migrate["command"] == ["db", "upgrade"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}

    roles = {"api", "worker", "scheduler"}
    for role in roles:
        service = services[role]
        assert service["image"] == "carillon:latest"
        assert service["command"][0] == role
        assert service["read_only"] is True
        assert service["environment"]["CARILLON_SECRET_KEY"] == key
        assert service["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"},
            "redis": {"condition": "service_healthy"},
        }
    assert "127.0.0.1:8000/healthz" in " ".join(services["api"]["healthcheck"]["test"])
    worker = services["worker"]
    metrics_port = worker["command"][worker["command"].index("--metrics-port") + 1]
    assert f"127.0.0.1:{metrics_port}/metrics" in " ".join(worker["healthcheck"]["test"])
    assert services["scheduler"]["healthcheck"] == {"disable": True}


def test_compose_refuses_to_start_without_a_secret_key() -> None:
    done = compose_config({"CARILLON_SECRET_KEY": ""})
    assert done.returncode != 0
    assert "CARILLON_SECRET_KEY" in done.stdout + done.stderr
