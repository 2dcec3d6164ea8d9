"""`POST /v1/messages` end to end: a send key, a person by userId, e-mail or phone, a named
message or inline content, through the outbox and the worker to the providers' local
stand-ins, with the send-time policy of a transactional message, idempotency keys, and a
clear refusal (nothing queued) for every bad request."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.db import session_scope
from app.delivery import models
from app.ops import story
from tests.helpers import (
    WRITE_KEY,
    Pipeline,
    Providers,
    basic,
    configure,
    deliver,
    deliveries,
    held,
    identify,
    load,
    route,
)
from tests.messages.conftest import OTHER_SEND_KEY, READ_KEY, RECEIPTS, bearer, receipt

ADA = {"first_name": "Ada", "email": "ada@example.org", "phone": "+33612345678"}


def known(user: str = "alice", **traits: Any) -> None:
    """A person the shop identified, stamped on arrival."""
    route({**identify(user, {**ADA, "email": f"{user}@example.org", **traits}), "timestamp": None})


def post(client: TestClient, body: Any, **headers: str) -> Any:
    return client.post("/v1/messages", json=body, headers={**bearer(), **headers})


def refused(answer: Any, status: int, words: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.json()["success"] is False
    assert words in answer.json()["message"], answer.json()["message"]
    assert deliveries() == [], "a refused request queued something"


# ------------------------------------------------------------------------------ end to end


def test_a_named_receipt_reaches_sendgrid_through_the_outbox(
    client: TestClient, providers: Providers, pipeline: Pipeline
) -> None:
    known("alice")
    answer = post(client, receipt("alice"))
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["success"] is True and body["channel"] == "email"
    pipeline.drain()
    [delivery] = deliveries()
    assert delivery.id == body["deliveryId"] and delivery.profile_id == body["profileId"]
    assert delivery.status == models.SENT
    assert delivery.instance_id is None
    assert (delivery.journey_id, delivery.step_path) == ("receipts", "message:order-receipt")
    [request] = providers.sendgrid.requests
    mail = request.body
    assert mail["personalizations"][0]["to"] == [{"email": "alice@example.org"}]
    assert mail["subject"] == "Commande A-1001"
    html = next(part["value"] for part in mail["content"] if part["type"] == "text/html")
    assert "Merci Ada, total 42.5 EUR" in html


def test_inline_sms_by_phone_reaches_twilio(
    client: TestClient, providers: Providers, pipeline: Pipeline
) -> None:
    known("bob", sms_consent="opted_in", phone="+33611112222")
    answer = post(
        client,
        {
            "phone": "+33611112222",
            "channel": "sms",
            "content": {"text": "Code {{ event.properties.code }}", "max_segments": 1},
            "data": {"code": "493817"},
        },
    )
    assert answer.status_code == 202, answer.text
    pipeline.drain()
    [delivery] = deliveries()
    assert delivery.status == models.SENT
    assert (delivery.journey_id, delivery.step_path) == ("(api)", "inline")
    [request] = providers.twilio.requests
    assert request.body["To"] == "+33611112222" and request.body["Body"] == "Code 493817"


def test_the_person_is_found_by_email_and_gets_their_locale(
    client: TestClient, providers: Providers, pipeline: Pipeline
) -> None:
    known("carol", locale="en-GB")
    answer = post(client, {**receipt(None), "userId": None, "email": "carol@example.org"})
    assert answer.status_code == 202, answer.text
    pipeline.drain()
    [request] = providers.sendgrid.requests
    assert request.body["subject"] == "Order A-1001"


def test_a_transactional_send_is_exempt_from_quiet_hours_and_caps_but_counts(
    client: TestClient, providers: Providers, pipeline: Pipeline, settings_env: Any
) -> None:
    configure(settings_env, quiet_hours="email=00:00-23:59", frequency_caps="email=1/24h")
    known("alice")
    for order in ("A-1", "A-2"):
        answer = post(client, receipt("alice", data={"order_id": order, "total": 1}))
        assert answer.status_code == 202, answer.text
    pipeline.drain()
    assert [d.status for d in deliveries()] == [models.SENT, models.SENT]
    assert len(providers.sendgrid.requests) == 2


def test_an_unsubscribed_person_still_gets_a_receipt_by_email(
    client: TestClient, providers: Providers, pipeline: Pipeline
) -> None:
    known("alice", email_consent="unsubscribed")
    assert post(client, receipt("alice")).status_code == 202
    pipeline.drain()
    assert [d.status for d in deliveries()] == [models.SENT]


def test_one_inline_template_renders_each_requests_data(client: TestClient) -> None:
    known("bob", sms_consent="opted_in", phone="+33611112222")
    for code in ("111111", "222222"):
        body = {
            "phone": "+33611112222",
            "channel": "sms",
            "content": {"text": "Code {{ event.properties.code }}"},
            "data": {"code": code},
        }
        assert post(client, body).status_code == 202
    texts = sorted(delivery.content["text"] for delivery in deliveries())
    assert texts == ["Code 111111", "Code 222222"]


@pytest.mark.parametrize(
    ("channel", "traits", "reason"),
    [
        ("email", {"email_consent": "bounced"}, "no consent (email bounced)"),
        ("email", {"email_consent": "complained"}, "no consent (email complained)"),
        ("sms", {"sms_consent": "opted_out"}, "no consent (sms opted out)"),
        ("sms", {}, "no consent (sms requires explicit opt-in)"),
    ],
)
def test_no_consent_is_409_with_the_reason_and_nothing_queued(
    client: TestClient, channel: str, traits: dict[str, Any], reason: str
) -> None:
    known("alice", **traits)
    answer = post(client, receipt("alice", channel=channel))
    refused(answer, 409, reason)


def test_a_person_without_the_address_is_409(client: TestClient) -> None:
    route(identify("dave", {"first_name": "Dave"}))
    refused(post(client, receipt("dave")), 409, "the person has no email to send to")


def test_consent_is_checked_again_at_send_time(client: TestClient, providers: Providers) -> None:
    """Accepted while the person had opted in; a STOP came in before the worker took it."""
    known("alice", sms_consent="opted_in")
    answer = post(client, receipt("alice", channel="sms"))
    assert answer.status_code == 202, answer.text
    known("alice", sms_consent="opted_out")
    delivery = deliver(answer.json()["deliveryId"])  # the worker's job body
    assert delivery.status == models.SUPPRESSED
    assert held(delivery.id) == [("suppressed", "sms opted out")]
    assert providers.twilio.requests == []


def test_a_transient_provider_error_is_retried_like_any_delivery(
    client: TestClient, providers: Providers
) -> None:
    known("alice")
    providers.sendgrid.fail_next(503, {"errors": [{"message": "busy"}]})
    answer = post(client, receipt("alice"))
    assert answer.status_code == 202
    delivery = deliver(answer.json()["deliveryId"])
    assert delivery.status == models.PENDING and delivery.attempts == 1
    assert delivery.next_attempt_at is not None and "busy" in (delivery.error or "")


def test_ops_tell_the_story_of_a_transactional_send(client: TestClient) -> None:
    known("alice")
    delivery_id = post(client, receipt("alice")).json()["deliveryId"]
    with session_scope() as session:
        told = story.tell(session, delivery_id)
    assert told.instance_id is None and told.message_id is None
    assert "transactional send message:order-receipt (receipts)" in story.render(told)


# ------------------------------------------------------------------------------ idempotency


def test_the_same_key_and_request_is_the_same_delivery(client: TestClient) -> None:
    known("alice")
    first = post(client, receipt("alice"), **{"Idempotency-Key": "order-A-1001"})
    # The same request, its keys in another order: still the same request.
    again = post(
        client,
        dict(reversed(list(receipt("alice").items()))),
        **{"Idempotency-Key": "order-A-1001"},
    )
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert len(deliveries()) == 1


def test_a_replay_keeps_its_answer_after_the_person_opted_out(client: TestClient) -> None:
    """The key is looked up when the request would be refused: the shop's retry of a message
    already queued learns it was queued, not that it could not be."""
    known("alice", sms_consent="opted_in")
    body = receipt("alice", channel="sms")
    first = post(client, body, **{"Idempotency-Key": "order-A-1001"})
    known("alice", sms_consent="opted_out")
    again = post(client, body, **{"Idempotency-Key": "order-A-1001"})
    assert first.status_code == again.status_code == 202, again.text
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    refused_now = post(client, body, **{"Idempotency-Key": "order-A-1002"})
    assert refused_now.status_code == 409 and "no consent" in refused_now.json()["message"]
    assert len(deliveries()) == 1


def test_the_same_key_with_another_request_is_422(client: TestClient) -> None:
    known("alice")
    post(client, receipt("alice"), **{"Idempotency-Key": "order-A-1001"})
    other = receipt("alice", data={"order_id": "A-1002", "total": 1})
    answer = post(client, other, **{"Idempotency-Key": "order-A-1001"})
    assert answer.status_code == 422, answer.text
    assert "this key was used with another request" in answer.json()["message"]
    assert len(deliveries()) == 1


def test_keys_of_two_senders_never_meet(client: TestClient) -> None:
    known("alice")
    post(client, receipt("alice"), **{"Idempotency-Key": "1"})
    other = receipt("alice", data={"order_id": "B-1", "total": 1})
    answer = client.post(
        "/v1/messages", json=other, headers={**bearer(OTHER_SEND_KEY), "Idempotency-Key": "1"}
    )
    assert answer.status_code == 202, answer.text
    assert len(deliveries()) == 2


def test_without_a_key_each_request_is_a_message(client: TestClient) -> None:
    known("alice")
    post(client, receipt("alice"))
    post(client, receipt("alice"))
    assert len(deliveries()) == 2


# ------------------------------------------------------------------------------ who may send


def test_the_public_write_key_is_403(client: TestClient) -> None:
    known("alice")
    as_basic = client.post("/v1/messages", json=receipt("alice"), headers=basic(WRITE_KEY))
    refused(as_basic, 403, "a write key sends events and is public")
    as_bearer = client.post("/v1/messages", json=receipt("alice"), headers=bearer(WRITE_KEY))
    refused(as_bearer, 403, "a write key")


def test_a_read_key_is_403(client: TestClient) -> None:
    known("alice")
    answer = client.post("/v1/messages", json=receipt("alice"), headers=bearer(READ_KEY))
    refused(answer, 403, "a read key reads people's data")


def test_missing_or_wrong_send_keys_are_401(client: TestClient) -> None:
    known("alice")
    refused(client.post("/v1/messages", json=receipt("alice")), 401, "missing send key")
    wrong = client.post("/v1/messages", json=receipt("alice"), headers=bearer("x" * 32))
    refused(wrong, 401, "wrong send key")


def test_without_send_keys_the_api_is_closed(
    client: TestClient, settings_env: pytest.MonkeyPatch
) -> None:
    configure(settings_env, send_keys=None)
    known("alice")
    refused(post(client, receipt("alice")), 503, "set CARILLON_SEND_KEYS")


# ------------------------------------------------------------------------------ bad input


def test_an_unknown_person_is_404(client: TestClient) -> None:
    refused(post(client, receipt("nobody")), 404, "userId: nobody is known as 'nobody'")
    refused(post(client, {**receipt(None), "phone": "+1555"}), 404, "phone: nobody")


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"message": "order-reciept"}, "unknown message 'order-reciept' (did you mean"),
        ({"message": "password-reset", "channel": "sms"}, "has no sms variant; it has email"),
        ({"journey": "nope"}, "journey: no journey file has the id 'nope'"),
        (
            {"message": None, "content": {"subject": "Hi"}},
            "content: email needs html, subject; missing html",
        ),
        (
            {"message": None, "content": {"subject": "Hi", "html": "<p>x</p>", "body": "x"}},
            "content.body: not a email content key",
        ),
        (
            {"message": None, "content": {"subject": "{{ profil.x }}", "html": "<p>x</p>"}},
            "content.subject: line 1: unknown variable 'profil'",
        ),
        (
            {"message": None, "content": {"subject": 3, "html": "<p>x</p>"}},
            "content.subject: expected text",
        ),
        (
            {"message": None, "channel": "sms", "content": {"text": "x", "max_segments": 0}},
            "content.max_segments: max_segments must be a whole number",
        ),
        ({"data": {}}, "the message cannot be made with this data"),
    ],
)
def test_what_cannot_be_sent_is_422(
    client: TestClient, changes: dict[str, Any], words: str
) -> None:
    known("alice", sms_consent="opted_in")
    refused(post(client, receipt("alice", **changes)), 422, words)


def test_a_message_named_by_two_journeys_needs_the_journey(
    client: TestClient, tmp_path: Path
) -> None:
    known("alice")
    other = RECEIPTS.replace("id: receipts", "id: marketplace-receipts")
    load(tmp_path, RECEIPTS, other)
    answer = post(client, receipt("alice"))
    refused(answer, 422, "several journeys (marketplace-receipts, receipts): say which")
    answer = post(client, receipt("alice", journey="marketplace-receipts"))
    assert answer.status_code == 202, answer.text
    assert deliveries()[0].journey_id == "marketplace-receipts"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"channel": "email", "message": "order-receipt"}, "give exactly one of userId"),
        (
            {"userId": "alice", "email": "a@x", "channel": "email", "message": "order-receipt"},
            "given: userId, email",
        ),
        ({"userId": "alice", "channel": "email"}, "give either message"),
        (
            {"userId": "alice", "channel": "email", "message": "x", "content": {}},
            "give either message",
        ),
        ({"userId": "alice", "channel": "pigeon", "message": "order-receipt"}, "unknown channel"),
        ({"userId": "alice", "channel": "email", "message": "Bad Name"}, "message: String"),
        ({**receipt("alice"), "extra": 1}, "extra: Extra inputs are not permitted"),
        ({**receipt("alice"), "data": []}, "data: Input should be a valid dictionary"),
        ([1, 2], "body: expected a JSON object"),
        ({**receipt("alice"), "data": {"x": "\u0000"}}, "data.x: contains a NUL character"),
    ],
)
def test_malformed_requests_are_400(client: TestClient, body: Any, words: str) -> None:
    known("alice")
    refused(post(client, body), 400, words)


def test_malformed_json_and_bad_idempotency_keys_are_400(client: TestClient) -> None:
    known("alice")
    answer = client.post(
        "/v1/messages",
        content=b"{not json",
        headers={**bearer(), "Content-Type": "application/json"},
    )
    refused(answer, 400, "malformed JSON")
    refused(
        post(client, receipt("alice"), **{"Idempotency-Key": "x" * 256}), 400, "Idempotency-Key"
    )


def test_a_body_over_32_kb_is_refused(client: TestClient) -> None:
    known("alice")
    big = receipt("alice", data={"lines": ["x" * 1000] * 40})
    answer = post(client, big)
    assert answer.status_code in (400, 413)
    assert deliveries() == []


def test_requests_racing_with_one_key_make_one_delivery(client: TestClient) -> None:
    known("alice")
    answers: list[Any] = []

    def one() -> None:
        racer = TestClient(client.app)
        answers.append(post(racer, receipt("alice"), **{"Idempotency-Key": "race"}))

    threads = [threading.Thread(target=one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [answer.status_code for answer in answers] == [202] * 6
    assert len({answer.json()["deliveryId"] for answer in answers}) == 1
    assert len(deliveries()) == 1
