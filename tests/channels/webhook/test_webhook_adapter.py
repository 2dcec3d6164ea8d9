"""The webhook adapter against a local receiver that verifies with the reference library."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from channels.base import Message, Outcome, Recipient
from channels.webhook.adapter import MAX_ANSWER_BYTES, WebhookSender
from tests.channels.webhook.conftest import BODY, message
from tests.channels.webhook.receiver import OTHER_SECRET, TEST_SECRET, WebhookReceiver
from tests.providers.server import unused_port

MakeSender = Callable[..., WebhookSender]


def test_a_delivery_is_posted_signed_and_the_reference_library_verifies_it(
    receiver: WebhookReceiver, make_sender: MakeSender
) -> None:
    sent = message(receiver.url("/hooks/orders?source=carillon"))
    result = make_sender().send(sent)

    assert (result.outcome, result.status_code) == (Outcome.SENT, 204)
    assert result.provider_message_id == "msg_17"
    assert receiver.rejected == []
    [accepted] = receiver.accepted
    assert accepted.webhook_id == "msg_17"
    assert accepted.payload == json.loads(BODY)
    request = accepted.request
    assert (request.method, request.path, request.query) == (
        "POST",
        "/hooks/orders",
        {"source": ["carillon"]},
    )
    # What is signed and posted is the body stored on the delivery, byte for byte.
    assert request.raw_body == sent.content["body"].encode("utf-8")
    assert request.raw_body == b'{"type":"order.completed","data":{"order_id":"A-17",' + (
        '"total":42.5,"name":"Zoé"}}'.encode()
    )
    assert request.header("content-type") == "application/json"
    assert request.header("host") == f"127.0.0.1:{receiver.port}"
    assert request.header("webhook-signature", "").startswith("v1,")


def test_a_retry_has_the_same_webhook_id_and_a_fresh_valid_signature(
    receiver: WebhookReceiver, make_sender: MakeSender
) -> None:
    receiver.fail_next(503, {"error": "busy"})
    sender = make_sender()
    first = sender.send(message(receiver.url()))
    second = sender.send(message(receiver.url()))

    assert (first.outcome, first.transient, second.outcome) == (
        Outcome.FAILED,
        True,
        Outcome.SENT,
    )
    requests = receiver.requests
    assert [r.header("webhook-id") for r in requests] == ["msg_17", "msg_17"]
    for request in requests:  # the refused attempt was signed as well as the accepted one
        assert receiver.verify(request) == json.loads(BODY)


def test_every_secret_of_a_host_signs_so_a_receiver_can_rotate(
    receiver: WebhookReceiver, make_sender: MakeSender
) -> None:
    sender = make_sender(secrets=f"127.0.0.1={OTHER_SECRET}, 127.0.0.1={TEST_SECRET}")
    assert sender.send(message(receiver.url())).outcome is Outcome.SENT
    [request] = receiver.requests
    signatures = (request.header("webhook-signature") or "").split(" ")
    assert len(signatures) == 2
    assert Webhook(OTHER_SECRET).verify(request.raw_body, request.headers) == json.loads(BODY)


def test_a_signature_made_with_another_secret_is_rejected_by_the_receiver(
    receiver: WebhookReceiver, make_sender: MakeSender
) -> None:
    """The receiver is a real check: the stand-in refuses what its secret did not sign."""
    result = make_sender(secrets=f"127.0.0.1={OTHER_SECRET}").send(message(receiver.url()))
    assert (result.outcome, result.status_code, result.transient) == (Outcome.FAILED, 401, False)
    assert receiver.rejected == ["No matching signature found"]
    assert "No matching signature found" in (result.error or "")


def test_a_host_without_a_secret_gets_nothing(
    receiver: WebhookReceiver, make_sender: MakeSender
) -> None:
    result = make_sender(secrets=f"hooks.example.com={TEST_SECRET}").send(message(receiver.url()))
    assert (result.outcome, result.transient) == (Outcome.FAILED, False)
    assert result.error == (
        "no secret for 127.0.0.1: add 127.0.0.1=whsec_... to CARILLON_WEBHOOK_SECRETS "
        "(nothing is posted unsigned)"
    )
    assert receiver.requests == []


@pytest.mark.parametrize(
    ("status", "headers", "retry_after"),
    [
        (408, {}, None),
        (429, {"Retry-After": "120"}, 120.0),
        (500, {}, None),
        (502, {}, None),
        (503, {"Retry-After": "30"}, 30.0),
        (504, {}, None),
    ],
)
def test_timeouts_throttling_and_server_errors_are_retried(
    receiver: WebhookReceiver,
    make_sender: MakeSender,
    status: int,
    headers: dict[str, str],
    retry_after: float | None,
) -> None:
    receiver.fail_next(status, {"error": "try later"}, headers)
    result = make_sender().send(message(receiver.url()))
    assert (result.outcome, result.status_code, result.transient) == (Outcome.FAILED, status, True)
    assert result.retry_after_seconds == retry_after
    assert result.error == f'HTTP {status}: {{"error": "try later"}}'


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 413, 422])
def test_other_client_errors_are_final(
    receiver: WebhookReceiver, make_sender: MakeSender, status: int
) -> None:
    receiver.fail_next(status, "no such hook")
    result = make_sender().send(message(receiver.url()))
    assert (result.outcome, result.status_code, result.transient) == (Outcome.FAILED, status, False)
    assert result.error == f"HTTP {status}: no such hook"


def test_a_redirect_is_not_followed(receiver: WebhookReceiver, make_sender: MakeSender) -> None:
    """Following it would post to an address nobody checked (e.g. the metadata service)."""
    receiver.fail_next(307, None, {"Location": "http://169.254.169.254/latest/meta-data/"})
    result = make_sender().send(message(receiver.url()))
    assert (result.outcome, result.status_code, result.transient) == (Outcome.FAILED, 307, False)
    assert result.error == (
        "HTTP 307: redirects are not followed; update the URL "
        "(the endpoint points to http://169.254.169.254/latest/meta-data/)"
    )
    assert len(receiver.requests) == 1


def test_only_the_start_of_a_long_refusal_is_read_and_kept(
    receiver: WebhookReceiver, make_sender: MakeSender
) -> None:
    receiver.fail_next(400, "x" * 1_000_000)
    result = make_sender().send(message(receiver.url()))
    assert result.error == "HTTP 400: " + "x" * MAX_ANSWER_BYTES


def test_a_slow_endpoint_times_out_and_is_retried(
    receiver: WebhookReceiver, make_sender: MakeSender
) -> None:
    receiver.fail_next(204, delay_seconds=5)
    result = make_sender(timeout=0.3).send(message(receiver.url()))
    assert (result.outcome, result.transient) == (Outcome.FAILED, True)
    assert result.error == "127.0.0.1 unreachable: timed out (ReadTimeout)"


def test_a_closed_port_is_retried(make_sender: MakeSender) -> None:
    result = make_sender().send(message(f"http://127.0.0.1:{unused_port()}/hooks"))
    assert (result.outcome, result.transient) == (Outcome.FAILED, True)
    assert (result.error or "").startswith("127.0.0.1 unreachable: ConnectError")


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (
            {"url": "ftp://127.0.0.1/hooks", "body": "{}"},
            "the webhook URL 'ftp://127.0.0.1/hooks' is not an http or https URL; "
            "only those are posted to",
        ),
        ({"url": "", "body": "{}"}, "the webhook URL is empty"),
        ({"url": "http://127.0.0.1/", "body": "[1, 2]"}, None),
        ({"url": "http://127.0.0.1/", "body": None}, None),
    ],
)
def test_content_that_is_not_a_webhook_is_refused_without_a_request(
    receiver: WebhookReceiver,
    make_sender: MakeSender,
    content: dict[str, Any],
    error: str | None,
) -> None:
    """The rendered content is checked again before sending: the adapter trusts no row."""
    unchecked = Message("18", "webhook", Recipient("p1"), content)
    result = make_sender().send(unchecked)
    assert (result.outcome, result.transient) == (Outcome.FAILED, False)
    assert error is None or result.error == error
    assert receiver.requests == []
