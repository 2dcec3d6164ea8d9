"""Structured logs: one JSON object per line, and one grep follows a message from the HTTP
request to the provider's answer."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.journeys import catalog
from app.ops import logs
from tests.helpers import REPO, Pipeline, newsletter_signup, only_delivery
from tests.providers.twilio import TwilioServer


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Everything logged at INFO and above, formatted as in production."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[str]:
    return [line for line in stream.getvalue().splitlines() if line]


def grep(stream: io.StringIO, needle: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines(stream) if needle in line]


def test_one_grep_follows_a_message_from_http_to_the_provider(
    client: TestClient, pipeline: Pipeline, twilio: TwilioServer, json_log: io.StringIO
) -> None:
    catalog.sync_directory(REPO / "journeys")
    identify, signup = newsletter_signup("ada")
    signup["messageId"] = "signup-ada-7"
    assert client.post("/v1/identify", json=identify, auth=("test-key", "")).status_code == 200
    answer = client.post(
        "/v1/track", json=signup, auth=("test-key", ""), headers={"X-Request-ID": "req-abc-1"}
    )
    assert answer.status_code == 200
    assert answer.headers["x-request-id"] == "req-abc-1"
    pipeline.drain()
    delivery = only_delivery()
    assert delivery.status == "sent"

    every = [json.loads(line) for line in lines(json_log)]  # every line is one JSON object
    assert all({"ts", "level", "logger", "msg"} <= set(entry) for entry in every)

    # grep <messageId>: accepted (with the request id), routed, planned, sent.
    by_message = grep(json_log, "signup-ada-7")
    msgs = [entry["msg"] for entry in by_message]
    assert msgs[0] == "accepted 1 event(s) from source default"
    assert by_message[0]["request_id"] == "req-abc-1"
    assert any(m.startswith("event ") and "routed (track Newsletter Subscribed)" in m for m in msgs)
    assert f"delivery {delivery.id} planned: newsletter-welcome step 0 on sms (pending)" in msgs
    assert "provider answered: sent" in msgs

    # grep <delivery id> (as a JSON field): planned, then the provider's answer with its id.
    by_delivery = [e for e in every if e.get("delivery_id") == delivery.id]
    assert [e["msg"] for e in by_delivery][:1] == [
        f"delivery {delivery.id} planned: newsletter-welcome step 0 on sms (pending)"
    ]
    answered = next(e for e in by_delivery if e["msg"] == "provider answered: sent")
    assert answered["provider_message_id"] == delivery.provider_message_id
    assert answered["channel"] == "sms"
    for entry in by_delivery:
        assert entry["message_id"] == "signup-ada-7"
        assert entry["profile_id"] == delivery.profile_id
        assert entry["instance_id"] == delivery.instance_id
    # And the provider's own id leads back to all of it.
    assert grep(json_log, delivery.provider_message_id or "?")[0]["delivery_id"] == delivery.id


def test_a_request_id_is_made_up_when_missing_or_unsafe(client: TestClient) -> None:
    made = client.get("/healthz").headers["x-request-id"]
    assert len(made) == 32
    unsafe = client.get("/healthz", headers={"X-Request-ID": 'x" injected\nline'})
    assert unsafe.headers["x-request-id"] != 'x" injected\nline'
    long = client.get("/healthz", headers={"X-Request-ID": "a" * 500})
    assert len(long.headers["x-request-id"]) == 32


def test_ids_do_not_leak_out_of_their_scope() -> None:
    with logs.scope(delivery_id=5):
        logs.bind(profile_id="p-1")
        assert logs.current() == {"delivery_id": 5, "profile_id": "p-1"}
    assert logs.current() == {}


def test_json_formatter_keeps_one_line_per_record_with_the_traceback() -> None:
    formatter = logs.JsonFormatter()
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        record = logging.getLogger("t").makeRecord(
            "t", logging.ERROR, __file__, 1, "failed %s", ("x",), exc_info=True
        )
        import sys

        record.exc_info = sys.exc_info()
    with logs.scope(message_id="m-1"):
        line = formatter.format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["msg"] == "failed x"
    assert entry["message_id"] == "m-1"
    assert "ValueError: bad\nthing" in entry["exc"]


def test_log_format_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(logs.formatter("json"), logs.JsonFormatter)
    assert isinstance(logs.formatter("text"), logs.TextFormatter)
    with pytest.raises(ValueError, match="CARILLON_LOG_FORMAT must be json or text"):
        logs.formatter("xml")
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        monkeypatch.setenv("CARILLON_LOG_FORMAT", "text")
        logs.configure("json")
        assert isinstance(root.handlers[0].formatter, logs.TextFormatter)
        monkeypatch.delenv("CARILLON_LOG_FORMAT")
        logs.configure("json")
        assert isinstance(root.handlers[0].formatter, logs.JsonFormatter)
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


def test_no_raw_address_reaches_a_log_line() -> None:
    """The dry-run note names where a message would have gone; the log must not."""
    record = logging.getLogger("app.delivery.service").makeRecord(
        "app.delivery.service",
        logging.INFO,
        __file__,
        1,
        "delivery %s %s",
        (7, "dry run: nothing was sent (would have gone to alice.martin@example.fr, +33612345678)"),
        None,
    )
    for formatter in (logs.JsonFormatter(), logs.TextFormatter()):
        line = formatter.format(record)
        assert "alice.martin@" not in line and "+33612345678" not in line
        assert "a***@example.fr" in line and "+33*******78" in line  # still tells ops the route


def test_the_scheduler_is_quiet_at_rest_unless_debugging(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    scheduler_log = logging.getLogger("apscheduler")
    try:
        monkeypatch.delenv("CARILLON_LOG_LEVEL", raising=False)
        logs.configure("text")
        assert not scheduler_log.isEnabledFor(logging.INFO)  # two lines a second at rest
        assert scheduler_log.isEnabledFor(logging.WARNING)  # missed runs and job errors show
        monkeypatch.setenv("CARILLON_LOG_LEVEL", "DEBUG")
        scheduler_log.setLevel(logging.NOTSET)
        logs.configure("text")
        assert scheduler_log.isEnabledFor(logging.DEBUG)
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
        scheduler_log.setLevel(logging.NOTSET)
