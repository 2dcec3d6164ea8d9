"""Metrics and logs of real Carillon processes, where the multi-process story matters.

On PostgreSQL + Redis: `carillon api` and `carillon worker --processes 2 --metrics-port`; the
provider latency observed inside a forked worker process shows on the worker's metrics port.
On the embedded default: one `carillon serve`, whose own `/metrics` has it. Either way the
processes log JSON lines (CARILLON_LOG_FORMAT=json) that carry the delivery's ids.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from app.db import session_scope
from app.delivery.models import Delivery
from app.settings import get_settings
from tests.helpers import TOKEN, newsletter_signup
from tests.processes import Process, wait_until
from tests.providers.server import unused_port

PRODUCTION = get_settings().redis_url is not None and not get_settings().is_sqlite


def sent_sms() -> list[Delivery]:
    with session_scope() as session:
        return [
            d
            for d in session.query(Delivery).filter(Delivery.channel == "sms")
            if d.status == "dry_run"
        ]


def provider_calls(url: str, headers: dict[str, str]) -> Callable[[], float]:
    def count() -> float:
        try:
            text = httpx.get(url, headers=headers, timeout=2).text
        except httpx.HTTPError:
            return -1
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if (
                    sample.name == "carillon_provider_request_duration_seconds_count"
                    and sample.labels.get("channel") == "sms"
                ):
                    return sample.value
        return 0

    return count


def test_provider_latency_reaches_prometheus_from_the_process_that_sends(tmp_path: Path) -> None:
    api_port = unused_port()
    env = {
        **os.environ,
        "CARILLON_WRITE_KEYS": "test-key",
        "CARILLON_ADMIN_TOKEN": TOKEN,
        "CARILLON_LOG_FORMAT": "json",
    }
    processes: list[Process] = []
    try:
        if PRODUCTION:
            metrics_port = unused_port()
            roles = [
                ["api", "--host", "127.0.0.1", "--port", str(api_port)],
                [
                    "worker",
                    "--processes",
                    "2",
                    "--threads",
                    "2",
                    "--metrics-host",
                    "127.0.0.1",
                    "--metrics-port",
                    str(metrics_port),
                ],
            ]
            metrics_url, headers = f"http://127.0.0.1:{metrics_port}/metrics", {}
        else:
            roles = [["serve", "--host", "127.0.0.1", "--port", str(api_port)]]
            metrics_url = f"http://127.0.0.1:{api_port}/metrics"
            headers = {"Authorization": f"Bearer {TOKEN}"}
        for args in roles:
            processes.append(Process(args, env, tmp_path / f"{args[0]}.log"))
        base = f"http://127.0.0.1:{api_port}"

        def api_up() -> bool:
            try:
                return httpx.get(f"{base}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until("API ready", api_up, 60, processes)
        count = provider_calls(metrics_url, headers)
        wait_until("metrics served", lambda: count() >= 0, 60, processes)
        body = {"batch": newsletter_signup("ada")}
        assert httpx.post(f"{base}/v1/batch", json=body, auth=("test-key", "")).status_code == 200

        wait_until("the welcome SMS is made", lambda: len(sent_sms()) == 1, 60, processes)
        wait_until("its provider call is counted", lambda: count() == 1, 30, processes)
    finally:
        for process in processes:
            process.stop()

    [delivery] = sent_sms()
    # The sending process's log: the delivery's lines carry its ids.
    log = (tmp_path / f"{roles[-1][0]}.log").read_text(errors="replace")
    mine = [line for line in log.splitlines() if f'"delivery_id": {delivery.id}' in line]
    assert mine, log[-3000:]
    entries = [json.loads(line[line.index("{") :]) for line in mine]
    assert any(e["msg"] == "provider answered: dry_run" for e in entries)
    assert all(e["instance_id"] == delivery.instance_id for e in entries)
