"""The stand-ins themselves: they must refuse what the real providers refuse, or a broken
adapter could pass the adapter tests."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from typing import Any

import httpx
import pytest

from tests.providers.meta import TEST_ACCESS_TOKEN, TEST_AUDIENCE_ID, MetaGraphServer
from tests.providers.sendgrid import REQUIRED_MESSAGES, SPEC_FILE, SendGridServer, mail_send_schema
from tests.providers.server import load_spec
from tests.providers.twilio import (
    TEST_ACCOUNT_SID,
    TEST_AUTH_TOKEN,
    TEST_FROM_NUMBER,
    TwilioServer,
    message_resource_validator,
)

# ----------------------------------------------------------------------------- SendGrid

VALID_MAIL: dict[str, Any] = {
    "personalizations": [{"to": [{"email": "ann@example.com"}]}],
    "from": {"email": "shop@example.com"},
    "subject": "Hello",
    "content": [{"type": "text/plain", "value": "Hi"}],
    "custom_args": {"carillon_delivery_id": "1"},
}


def post_mail(server: SendGridServer, body: Any, key: str | None = "SG.test-key") -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{server.base_url}/v3/mail/send", json=body, headers=headers)


def test_sendgrid_accepts_a_valid_mail(sendgrid_server: SendGridServer) -> None:
    response = post_mail(sendgrid_server, VALID_MAIL)
    assert response.status_code == 202
    assert response.content == b""
    assert len(response.headers["X-Message-Id"]) == 22


def test_sendgrid_refuses_a_body_without_personalizations(sendgrid_server: SendGridServer) -> None:
    body = {key: value for key, value in VALID_MAIL.items() if key != "personalizations"}
    response = post_mail(sendgrid_server, body)
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["field"] == "personalizations"
    assert error["message"] == REQUIRED_MESSAGES["personalizations"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"personalizations": []}, "personalizations"),
        ({"personalizations": [{"to": []}]}, "personalizations.0.to"),
        (
            {"personalizations": [{"to": [{"email": "no-at-sign"}]}]},
            "personalizations.0.to.0.email",
        ),
        ({"content": None}, "content"),
        ({"subject": None}, "subject"),
        ({"from": None}, "from"),
        ({"custom_args": {"carillon_delivery_id": 1}}, "custom_args.carillon_delivery_id"),
        ({"categories": ["x" * 256]}, "categories.0"),
    ],
)
def test_sendgrid_refuses_what_sendgrid_refuses(
    sendgrid_server: SendGridServer, change: dict[str, Any], field: str
) -> None:
    body = {**VALID_MAIL, **change}
    body = {key: value for key, value in body.items() if value is not None}
    response = post_mail(sendgrid_server, body)
    assert response.status_code == 400, response.text
    fields = [error["field"] for error in response.json()["errors"]]
    assert field in fields


def test_sendgrid_checks_the_api_key(sendgrid_server: SendGridServer) -> None:
    missing = post_mail(sendgrid_server, VALID_MAIL, key=None)
    wrong = post_mail(sendgrid_server, VALID_MAIL, key="SG.other")
    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert missing.json()["errors"][0]["message"] == "authorization required"
    assert wrong.json() == {
        "errors": [
            {
                "message": "The provided authorization grant is invalid, expired, or revoked",
                "field": None,
                "help": None,
            }
        ]
    }


def test_sendgrid_schema_patch_is_the_only_departure_from_the_spec() -> None:
    spec = load_spec(SPEC_FILE)
    body = spec["components"]["requestBodies"]["PostMailSend"]["content"]["application/json"]
    assert body["schema"]["properties"]["custom_args"]["type"] == "string"  # the quirk
    patched = mail_send_schema()
    assert patched["properties"]["custom_args"]["type"] == "object"
    untouched = {k: v for k, v in patched["properties"].items() if k != "custom_args"}
    assert untouched == {
        k: v for k, v in body["schema"]["properties"].items() if k != "custom_args"
    }


# ----------------------------------------------------------------------------- Twilio


def post_sms(
    server: TwilioServer, form: dict[str, str], token: str = TEST_AUTH_TOKEN
) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Messages.json",
        data=form,
        auth=(TEST_ACCOUNT_SID, token),
    )


def test_twilio_answer_matches_the_specs_message_resource(twilio_server: TwilioServer) -> None:
    response = post_sms(
        twilio_server, {"To": "+33612345678", "From": TEST_FROM_NUMBER, "Body": "hi"}
    )
    assert response.status_code == 201
    resource = response.json()
    message_resource_validator().validate(resource)
    assert resource["status"] == "queued"
    assert (resource["to"], resource["from"], resource["body"]) == (
        "+33612345678",
        TEST_FROM_NUMBER,
        "hi",
    )


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"From": TEST_FROM_NUMBER, "Body": "hi"}, 21604),
        ({"To": "+33612345678", "Body": "hi"}, 21603),
        ({"To": "+33612345678", "From": TEST_FROM_NUMBER}, 21602),
        ({"To": "0612345678", "From": TEST_FROM_NUMBER, "Body": "hi"}, 21211),
        ({"To": "+33612345678", "from": TEST_FROM_NUMBER, "Body": "hi"}, 20001),
        ({"To": "+33612345678", "MessagingServiceSid": "MG123", "Body": "hi"}, 20001),
    ],
)
def test_twilio_refuses_what_twilio_refuses(
    twilio_server: TwilioServer, form: dict[str, str], code: int
) -> None:
    response = post_sms(twilio_server, form)
    assert response.status_code == 400
    error = response.json()
    assert error["code"] == code
    assert error["status"] == 400
    assert error["more_info"] == f"https://www.twilio.com/docs/errors/{code}"


def test_twilio_checks_basic_auth(twilio_server: TwilioServer) -> None:
    response = post_sms(
        twilio_server, {"To": "+33612345678", "From": TEST_FROM_NUMBER, "Body": "hi"}, token="x"
    )
    assert response.status_code == 401
    assert response.json() == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }


def test_twilio_refuses_another_accounts_path(twilio_server: TwilioServer) -> None:
    response = httpx.post(
        f"{twilio_server.base_url}/2010-04-01/Accounts/AC{'f' * 32}/Messages.json",
        data={"To": "+33612345678", "From": TEST_FROM_NUMBER, "Body": "hi"},
        auth=(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN),
    )
    assert (response.status_code, response.json()["code"]) == (404, 20404)


def test_twilio_answers_after_its_latency() -> None:
    """Benchmarks measure Carillon against a provider as slow as the real one."""
    with TwilioServer(latency_seconds=0.3) as server:
        started = time.monotonic()
        response = post_sms(server, {"To": "+33612345678", "From": TEST_FROM_NUMBER, "Body": "hi"})
        elapsed = time.monotonic() - started
    assert response.status_code == 201
    assert elapsed >= 0.3


# ----------------------------------------------------------------------------- Meta


def post_users(
    server: MetaGraphServer, payload: Any, token: str | None = TEST_ACCESS_TOKEN
) -> httpx.Response:
    form = {"payload": json.dumps(payload)}
    if token:
        form["access_token"] = token
    return httpx.post(f"{server.base_url}/v21.0/{TEST_AUDIENCE_ID}/users", data=form)


HASH = hashlib.sha256(b"ann@example.com").hexdigest()


def test_meta_accepts_hashes_and_answers_like_graph(meta_server: MetaGraphServer) -> None:
    response = post_users(meta_server, {"schema": "EMAIL_SHA256", "data": [HASH]})
    assert response.status_code == 200
    answer = response.json()
    assert answer["audience_id"] == TEST_AUDIENCE_ID
    assert answer["session_id"].isdigit()
    assert (answer["num_received"], answer["num_invalid_entries"]) == (1, 0)


def test_meta_counts_unhashed_values_as_invalid(meta_server: MetaGraphServer) -> None:
    response = post_users(
        meta_server, {"schema": ["EMAIL", "PHONE"], "data": [["ann@example.com", ""], ["", ""]]}
    )
    answer = response.json()
    assert (answer["num_received"], answer["num_invalid_entries"]) == (2, 2)


@pytest.mark.parametrize(
    "payload",
    [
        {"schema": "EMAIL", "data": [HASH]},
        {"schema": ["EMAIL", "PHONE"], "data": [[HASH]]},
        {"schema": ["EMAIL", "EMAIL"], "data": [[HASH, HASH]]},
        {"schema": ["EMAIL_SHA256", "PHONE_SHA256"], "data": [[HASH, HASH]]},
        {"schema": "EMAIL_SHA256", "data": []},
        {"schema": "EMAIL_SHA256"},
    ],
)
def test_meta_refuses_malformed_payloads(meta_server: MetaGraphServer, payload: Any) -> None:
    response = post_users(meta_server, payload)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == 100
    assert {"message", "type", "code", "fbtrace_id"} <= set(error)


def test_meta_checks_the_access_token(meta_server: MetaGraphServer) -> None:
    missing = post_users(meta_server, {"schema": "EMAIL_SHA256", "data": [HASH]}, token=None)
    wrong = post_users(meta_server, {"schema": "EMAIL_SHA256", "data": [HASH]}, token="bad")
    assert missing.status_code == wrong.status_code == 400
    assert missing.json()["error"]["code"] == 104
    assert wrong.json()["error"]["code"] == 190
    assert wrong.json()["error"]["type"] == "OAuthException"


# ----------------------------------------------------------------------------- the base


def test_requests_are_recorded_and_waited_for(twilio_server: TwilioServer) -> None:
    auth = base64.b64encode(f"{TEST_ACCOUNT_SID}:{TEST_AUTH_TOKEN}".encode()).decode()
    url = f"{twilio_server.base_url}/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Messages.json"

    def send(index: int) -> None:
        httpx.post(
            url,
            data={"To": f"+3361234567{index}", "From": TEST_FROM_NUMBER, "Body": "hi"},
            headers={"Authorization": f"Basic {auth}"},
        )

    threads = [threading.Thread(target=send, args=(i,)) for i in range(5)]
    for thread in threads:
        thread.start()
    recorded = twilio_server.wait_for_requests(5, timeout=5)
    for thread in threads:
        thread.join()
    assert sorted(r.body["To"] for r in recorded) == [f"+3361234567{i}" for i in range(5)]
    arrivals = [r.arrived_at for r in twilio_server.requests]
    assert arrivals == sorted(arrivals)


def test_wait_for_requests_times_out(meta_server: MetaGraphServer) -> None:
    with pytest.raises(TimeoutError, match="0 of 1 requests"):
        meta_server.wait_for_requests(1, timeout=0.05)


def test_canned_failures_are_served_in_order_then_the_real_logic(
    meta_server: MetaGraphServer,
) -> None:
    meta_server.fail_next(503, "down", times=2)
    meta_server.fail_next(429, {"error": {"code": 4}}, {"Retry-After": "1"})
    payload = {"schema": "EMAIL_SHA256", "data": [HASH]}
    statuses = [post_users(meta_server, payload).status_code for _ in range(4)]
    assert statuses == [503, 503, 429, 200]
    assert len(meta_server.requests) == 4


def test_kept_alive_requests_are_answered_without_waiting_for_a_delayed_ack(
    twilio_server: TwilioServer,
) -> None:
    """With Nagle's algorithm on, a body written after its headers waits for the client's
    delayed ACK (40 ms on Linux): 20 requests would take 0.8 s at least."""
    form = {"To": "+33612345678", "From": TEST_FROM_NUMBER, "Body": "hi"}
    url = f"{twilio_server.base_url}/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Messages.json"
    with httpx.Client(auth=(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN)) as client:
        client.post(url, data=form).raise_for_status()  # the connection, kept alive
        started = time.monotonic()
        for _ in range(20):
            client.post(url, data=form).raise_for_status()
        elapsed = time.monotonic() - started
    assert elapsed < 0.8


def test_many_clients_connecting_at_once_are_all_answered(twilio_server: TwilioServer) -> None:
    """A benchmark opens dozens of connections at once: they queue, none is reset."""
    url = f"{twilio_server.base_url}/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Messages.json"
    barrier = threading.Barrier(64)
    statuses: list[int] = []

    def send(index: int) -> None:
        form = {"To": f"+336123{index:05d}", "From": TEST_FROM_NUMBER, "Body": "hi"}
        barrier.wait()
        response = httpx.post(url, data=form, auth=(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN))
        statuses.append(response.status_code)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [201] * 64
