"""Every documented setting, set to a valid value, starts every process: `serve`, `api`,
`worker` and `scheduler` as real processes, as a user would run them.

A setting whose validation imports half of Carillon once made enabling SendGrid's signature
check a circular import at start-up; building objects in-process did not show it, so this
starts the real commands.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app.settings import Settings
from channels import registry
from channels.settings import variables
from tests.helpers import PRODUCTION
from tests.processes import CARILLON, REPO, Process, wait_until
from tests.providers.server import unused_port


def _sendgrid_public_key() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def every_setting(database_url: str, redis_url: str | None) -> dict[str, str]:
    """A valid value for every setting; the database and broker are the test run's own."""
    values = {
        "CARILLON_DATABASE_URL": database_url,
        "CARILLON_JOURNEYS_DIR": str(REPO / "journeys"),
        "CARILLON_SEGMENTS_DIR": str(REPO / "segments"),
        "CARILLON_BROADCASTS_DIR": str(REPO / "broadcasts"),
        "CARILLON_WRITE_KEYS": "test-key,shop=shop-key",
        "CARILLON_ADMIN_TOKEN": "ops-token-0123456789",
        "CARILLON_READ_KEYS": "crm=crm-read-key-0123456789,support-read-key-0123456789",
        "CARILLON_SEND_KEYS": "shop=shop-send-key-0123456789,billing-send-key-0123456789",
        "CARILLON_DEFAULT_TIMEZONE": "Europe/Paris",
        "CARILLON_WORKER_THREADS": "2",
        "CARILLON_SCHEDULER_INTERVAL_SECONDS": "0.5",
        "CARILLON_TIMER_BATCH_SIZE": "100",
        "CARILLON_SWEEP_AFTER_SECONDS": "20",
        "CARILLON_TIMER_LATE_SECONDS": "30",
        "CARILLON_COST_PER_MESSAGE": "email=0.001",
        # The audiences cost their ad sets' spend (CARILLON_META_AD_SETS), so not a price.
        "CARILLON_COST_PER_THOUSAND": "sms=70",
        "CARILLON_COST_CURRENCY": "USD",
        "CARILLON_BUDGETS": "sms=50USD/day,email=10USD/week",
        "CARILLON_ON_BUDGET": "sms=skip,email=wait",
        "CARILLON_ATTRIBUTION_WINDOWS": "email=3d,sms=12h,meta_audience=7d",
        "CARILLON_QUIET_HOURS": "sms=21:00-08:00,email=22:00-07:00",
        "CARILLON_FREQUENCY_CAPS": "email=1/24h+3/7d,sms=1/24h",
        "CARILLON_LINK_HOSTS": "shop.example,*.shop.example",
        "CARILLON_SENDGRID_BASE_URL": "http://127.0.0.1:9",
        "CARILLON_TWILIO_BASE_URL": "http://127.0.0.1:9",
        "CARILLON_META_GRAPH_URL": "http://127.0.0.1:9",
        "CARILLON_META_API_VERSION": "v21.0",
        "CARILLON_META_AD_SETS": "23850000000000001=120210000000000001|120210000000000002",
        "CARILLON_PUBLIC_URL": "https://carillon.example.com",
        "CARILLON_PROVIDER_TIMEOUT_SECONDS": "5",
        "CARILLON_SEND_CONCURRENCY": "8",
        "CARILLON_DELIVERY_BATCH_SIZE": "200",
        "CARILLON_SENDING_TIMEOUT_SECONDS": "60",
        "CARILLON_DELIVERY_MAX_ATTEMPTS": "4",
        "CARILLON_DELIVERY_ATTEMPTS_PER_CHANNEL": "email=5,sms=3,meta_audience=8",
        "CARILLON_RETRY_BASE_SECONDS": "1",
        "CARILLON_RETRY_MAX_SECONDS": "300",
        "CARILLON_RATE_LIMITS": "sms=20/s,email=100/s,meta_audience=200/h",
        "CARILLON_RATE_LIMIT_MAX_WAIT_SECONDS": "1",
        "CARILLON_SENDGRID_FROM_EMAIL": "shop@example.com",
        "CARILLON_SENDGRID_WEBHOOK_PUBLIC_KEY": _sendgrid_public_key(),
        "CARILLON_SECRET_KEY": "a-secret-key-for-every-process-0123456789",
        "CARILLON_SMS_HELP_TEXT": "Reply STOP to opt out.",
        "CARILLON_WEBHOOK_SECRETS": "hooks.example.com=whsec_"
        + base64.b64encode(b"a-webhook-secret-of-32-bytes-abc").decode(),
        "CARILLON_WEBHOOK_ALLOWED_HOSTS": "crm.internal,10.0.0.7",
        "CARILLON_META_PIXEL_ID": "1234567890123456",
        "CARILLON_META_CAPI_TEST_EVENT_CODE": "TEST12345",
        "CARILLON_WHATSAPP_FROM": "+14155238886",
        "CARILLON_WHATSAPP_MESSAGING_SERVICE_SID": "MG" + "1" * 32,
        "CARILLON_LOG_LEVEL": "DEBUG",  # the scheduler's job runs show at DEBUG only
        "CARILLON_LOG_FORMAT": "json",
        "SENDGRID_API_KEY": "SG.test-key",
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": "0" * 32,
        "TWILIO_FROM_NUMBER": "+15005550006",
        "TWILIO_MESSAGING_SERVICE_SID": "MG" + "0" * 32,
        "META_ACCESS_TOKEN": "EAAB-test-token",
    }
    if redis_url:
        values["CARILLON_REDIS_URL"] = redis_url
    return values


def all_variables() -> set[str]:
    """Carillon's settings and every installed channel's own, under the names users set."""
    names = {f"CARILLON_{name.upper()}" for name in Settings.model_fields}
    for model in registry.settings_models():
        names |= set(variables(model).values())
    return names


def test_the_list_covers_every_setting_and_every_documented_variable() -> None:
    """A new setting must be added here (and so be started with) and to README's table."""
    listed = set(every_setting("sqlite://", "redis://x")) - {"CARILLON_LOG_LEVEL"}
    listed -= {"CARILLON_LOG_FORMAT"}
    assert all_variables() == listed
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`((?:CARILLON|SENDGRID|TWILIO|META)_[A-Z0-9_]+)`", readme))
    assert documented <= listed | {"CARILLON_LOG_LEVEL", "CARILLON_LOG_FORMAT"}
    undocumented = all_variables() - documented
    assert not undocumented, f"settings missing from README's table: {sorted(undocumented)}"


@pytest.fixture
def environment(tmp_path: Path) -> dict[str, str]:
    """The test run's database (a fresh SQLite file on the embedded pass) and, on the services
    pass, a Redis database of their own, so the started workers take no job of this run."""
    url = os.environ["CARILLON_DATABASE_URL"]
    if url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path}/carillon.db"
    redis_url = os.environ.get("CARILLON_REDIS_URL")
    if redis_url:
        redis_url = redis_url.rsplit("/", 1)[0] + "/15"
    env = {**os.environ, **every_setting(url, redis_url)}
    subprocess.run([CARILLON, "db", "upgrade"], env=env, check=True, capture_output=True)
    return env


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _log(process: Process) -> str:
    return process.log.read_text(errors="replace")


def test_every_process_starts_with_every_setting_set(
    tmp_path: Path, environment: dict[str, str]
) -> None:
    """`serve` always; the production roles where their shared queue (Redis) is configured:
    the services pass. Without it they refuse at once (the next test)."""
    serve_port, api_port = unused_port(), unused_port()
    commands = {"serve": ["serve", "--host", "127.0.0.1", "--port", str(serve_port)]}
    if PRODUCTION:
        commands |= {
            "api": ["api", "--host", "127.0.0.1", "--port", str(api_port)],
            "worker": ["worker", "--processes", "1", "--threads", "2"],
            "scheduler": ["scheduler"],
        }
    serve_env = {**environment, "CARILLON_DATABASE_URL": f"sqlite:///{tmp_path}/serve.db"}
    processes = {
        role: Process(args, serve_env if role == "serve" else environment, tmp_path / role)
        for role, args in commands.items()
    }
    running = list(processes.values())
    ports = {"serve": serve_port, "api": api_port}
    try:
        for role in processes.keys() & ports.keys():
            base = f"http://127.0.0.1:{ports[role]}"
            wait_until(
                f"{role} answers /healthz", lambda b=base: _answers(f"{b}/healthz"), 60, running
            )
            assert _answers(f"{base}/readyz"), processes[role].tail()
        if PRODUCTION:
            worker, scheduler = processes["worker"], processes["scheduler"]
            wait_until("worker ready", lambda: "ready for action" in _log(worker), 60, running)
            wait_until("scheduler runs jobs", lambda: "Running job" in _log(scheduler), 60, running)
        assert all(p.popen.poll() is None for p in running)
    finally:
        for process in running:
            process.stop()
    for process in running:
        assert "Traceback" not in _log(process), process.tail()


@pytest.mark.parametrize(
    ("unset", "complaint"),
    [
        ("CARILLON_SECRET_KEY", "CARILLON_SECRET_KEY is not set: it signs unsubscribe links"),
        ("CARILLON_REDIS_URL", "CARILLON_REDIS_URL is not set: api, worker and scheduler share"),
    ],
)
@pytest.mark.parametrize("role", ["api", "worker", "scheduler"])
def test_a_production_role_without_a_required_setting_says_which_and_exits(
    environment: dict[str, str], role: str, unset: str, complaint: str
) -> None:
    env = {**environment, "CARILLON_REDIS_URL": "redis://127.0.0.1:6379/15"}
    env.pop(unset)
    done = subprocess.run([CARILLON, role], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith(f"carillon: {complaint}")
    assert len(done.stderr.strip().splitlines()) == 1  # one line, no traceback


@pytest.mark.parametrize("role", ["serve", "api", "worker", "scheduler"])
def test_a_bad_setting_is_one_line_naming_the_variable(
    environment: dict[str, str], role: str
) -> None:
    """Carillon's own settings and the channels' (e-mail's SendGrid key, the Conversions API's
    pixel), each bad value on its own line."""
    env = {
        **environment,
        "CARILLON_QUIET_HOURS": "sms=25:00-08:00",
        "CARILLON_WORKER_THREADS": "x",
        "CARILLON_SENDGRID_WEBHOOK_PUBLIC_KEY": "cut-short",
        "CARILLON_META_PIXEL_ID": "pixel-1",
    }
    done = subprocess.run([CARILLON, role], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("carillon: CARILLON_WORKER_THREADS: Input should be a valid integer")
    assert lines[1].startswith("carillon: CARILLON_QUIET_HOURS: 'sms=25:00-08:00' should be")
    assert lines[2].startswith(
        "carillon: CARILLON_SENDGRID_WEBHOOK_PUBLIC_KEY is not a readable public key"
    )
    assert lines[3].startswith("carillon: CARILLON_META_PIXEL_ID: 'pixel-1' is not a Meta pixel")
    assert len(lines) == 4


def test_the_api_started_without_its_database_says_so_on_readyz(
    tmp_path: Path, environment: dict[str, str]
) -> None:
    """A container started before its database: up, `/healthz` 200, `/readyz` 503 naming the
    database, rather than a traceback and a restart loop."""
    port = unused_port()
    env = {
        **environment,
        "CARILLON_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none",
        "CARILLON_REDIS_URL": "redis://127.0.0.1:6379/15",
    }
    api = Process(["api", "--host", "127.0.0.1", "--port", str(port)], env, tmp_path / "api")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until("api answers /healthz", lambda: _answers(f"{base}/healthz"), 60, [api])
        ready = httpx.get(f"{base}/readyz", timeout=5)
        assert ready.status_code == 503
        assert ready.json()["reason"].startswith("database unreachable")
    finally:
        api.stop()
    assert "Traceback" not in _log(api)
