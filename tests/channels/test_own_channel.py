"""The channel docs/channels.md teaches to write, installed from the page as a third party
would: it sends through its service, its settings are Carillon's at start, and a stopping worker
closes its connections (the adapter protocol's `close`)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker

from app import tasks
from app.delivery import service
from app.delivery.shutdown import CloseChannels
from app.settings import get_settings
from channels import registry
from channels.base import Message, Outcome, Recipient
from tests.channels.third_party import push_channel
from tests.providers.server import ProviderServer, RecordedRequest, Reply

CARILLON = str(Path(sys.executable).parent / "carillon")


class PushService(ProviderServer):
    """The push service of the example: takes any JSON POST and names the message."""

    def respond(self, request: RecordedRequest) -> Reply:
        return Reply.json(202, {}, {"X-Push-Id": f"push-{len(self.requests)}"})


@pytest.fixture
def push_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The documented channel installed, configured against a local push service."""
    with PushService() as push, push_channel(tmp_path, monkeypatch):
        url = f"{push.base_url}/v1/notify"
        monkeypatch.setenv("CARILLON_PUSH_URL", url)
        get_settings.cache_clear()
        service.channels.cache_clear()
        yield url
    service.close_channels()


def test_the_documented_channel_sends_through_its_service(push_url: str) -> None:
    channel = registry.build_channels(get_settings())["push"]
    message = Message("7", "push", Recipient("p-1"), {"title": "Hi", "text": "Yo"}, "welcome")
    result = channel.send(message)
    channel.close()
    assert (result.outcome, result.provider_message_id) == (Outcome.SENT, "push-1")
    assert "CARILLON_PUSH_URL" in registry.variables()  # listed with every channel setting


def test_a_stopping_worker_closes_every_adapter(push_url: str) -> None:
    """dramatiq's shutdown hook closes the adapters once no job can be using them; the next
    send builds them again."""
    assert any(isinstance(m, CloseChannels) for m in tasks.broker.middleware)
    adapters = service.channels()
    push = adapters["push"]
    assert not push.client.is_closed  # type: ignore[attr-defined]
    broker = StubBroker(middleware=[CloseChannels()])
    worker = dramatiq.Worker(broker, worker_threads=1)
    worker.start()
    worker.stop()
    assert push.client.is_closed  # type: ignore[attr-defined]
    assert service.channels()["push"] is not push


def test_a_bad_setting_of_the_channel_is_one_line_at_start(push_url: str, tmp_path: Path) -> None:
    """The package is found by the real command (the entry points on its path) and its
    settings checked with Carillon's."""
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "CARILLON_PUSH_URL": "push.example/notify"}
    done = subprocess.run([CARILLON, "worker"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("carillon: CARILLON_PUSH_URL: Input should be a valid URL")
    assert len(done.stderr.strip().splitlines()) == 1
