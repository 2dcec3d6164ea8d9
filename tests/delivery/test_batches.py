"""Deliveries made in batches: one send job claims its row and other due rows of its channel,
the calls go out concurrently on the worker's sending loop, the answers are written together.
A provider that hangs holds only its own channel's slots; a row that breaks the batch fails
alone and the others go."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import select, update

from app.db import session_scope
from app.delivery import models, service, state
from app.delivery.models import Delivery
from app.delivery.sender import slot_wait_seconds
from app.profiles.models import USER_ID, Identity
from app.settings import Settings, get_settings
from tests.delivery.conftest import EMAIL, SMS, journey_yaml
from tests.helpers import (
    Providers,
    by_journey,
    configure,
    deliveries,
    load,
    person,
    route,
    row,
    sha256,
)
from tests.helpers import track_now as event
from tests.providers.meta import TEST_AUDIENCE_ID, graph_error


def _plan_sms(people: int, tmp_path: Path) -> list[Delivery]:
    load(tmp_path, journey_yaml("welcome", "Newsletter Subscribed", SMS))
    for i in range(people):
        phone = f"+3361{i:07d}"
        route(
            person(f"p{i}", phone=phone, sms_opt_in=True), event(f"p{i}", "Newsletter Subscribed")
        )
    return deliveries()


def test_one_job_sends_the_due_rows_of_its_channel_each_once(
    providers: Providers, tmp_path: Path
) -> None:
    planned = _plan_sms(12, tmp_path)
    service.deliver_batch(planned[5].id, "sms", limit=10)  # its own row first, then the oldest

    phone_of = {d.id: f"+3361{i:07d}" for i, d in enumerate(planned)}
    sent = [d.id for d in deliveries() if d.status == models.SENT]
    assert len(sent) == 10 and planned[5].id in sent
    assert sorted(r.body["To"] for r in providers.twilio.requests) == sorted(
        phone_of[i] for i in sent
    )

    service.deliver_batch(planned[5].id, "sms", limit=10)  # the job again: the two left
    assert [d.status for d in deliveries()] == [models.SENT] * 12
    assert len(providers.twilio.requests) == 12 and {d.attempts for d in deliveries()} == {1}


def test_a_malformed_row_fails_alone_and_the_rest_of_its_batch_goes(
    providers: Providers, tmp_path: Path
) -> None:
    planned = _plan_sms(5, tmp_path)
    with session_scope() as session:  # content that is not an object: the checks cannot read it
        session.execute(
            update(Delivery).where(Delivery.id == planned[2].id).values(content=["not", "an"])
        )

    service.deliver_batch(planned[0].id, "sms")

    broken = row(planned[2].id)
    assert broken.status == models.FAILED and broken.status in state.DEAD_LETTERS
    assert "could not be prepared: AttributeError" in (broken.error or "")
    others = [row(d.id) for d in planned if d.id != planned[2].id]
    assert [d.status for d in others] == [models.SENT] * 4
    assert len(providers.twilio.requests) == 4


def test_a_hung_provider_holds_only_its_own_channel(
    settings_env: pytest.MonkeyPatch, providers: Providers, tmp_path: Path
) -> None:
    """Twilio holds its answer past the provider timeout, with one SMS slot per process: the
    e-mail sent meanwhile neither waits for it nor for a slot."""
    configure(settings_env, provider_timeout_seconds=4, send_concurrency=1)
    load(
        tmp_path,
        journey_yaml("welcome", "Newsletter Subscribed", SMS),
        journey_yaml("promo", "Promo Started", EMAIL),
    )
    route(person("ada", sms_opt_in=True), event("ada", "Newsletter Subscribed"))
    route(event("ada", "Promo Started"))
    sms, email = by_journey("welcome"), by_journey("promo")
    providers.twilio.fail_next(200, delay_seconds=8)  # no answer before the timeout

    hung = threading.Thread(target=service.deliver, args=(sms.id,))
    hung.start()
    try:
        providers.twilio.wait_for_requests(1)  # the SMS call holds the only SMS slot
        service.deliver(email.id)
        assert row(email.id).status == models.SENT
        assert len(providers.sendgrid.requests) == 1
        assert row(sms.id).status == models.SENDING  # still waiting on Twilio
    finally:
        hung.join(30)
    assert not hung.is_alive()
    timed_out = row(sms.id)
    assert (timed_out.status, timed_out.attempts) == (models.PENDING, 1)  # retried later
    assert "Twilio unreachable: ReadTimeout" in (timed_out.error or "")


def test_a_message_that_finds_no_slot_is_handed_back_without_an_attempt(
    settings_env: pytest.MonkeyPatch, providers: Providers, tmp_path: Path
) -> None:
    """Slots are bounded waits: with Twilio hung and its one slot taken, another SMS batch
    gives its row back (pending, attempt undone) rather than wait for the hang."""
    configure(
        settings_env,
        provider_timeout_seconds=4,
        sending_timeout_seconds=12,  # leaves (12 - 9 - 2) / 2 = 0.5 s to wait for a slot
        send_concurrency=1,
    )
    first, second = _plan_sms(2, tmp_path)
    providers.twilio.fail_next(200, delay_seconds=8)
    hung = threading.Thread(target=service.deliver, args=(first.id,))
    hung.start()
    try:
        providers.twilio.wait_for_requests(1)
        service.deliver(second.id)
        waited = row(second.id)
        assert (waited.status, waited.attempts) == (models.PENDING, 0)
        assert "no send slot of sms free within 0.5s" in (waited.error or "")
        assert waited.next_attempt_at is not None
    finally:
        hung.join(30)
    assert len(providers.twilio.requests) == 1


def test_slot_wait_fits_in_the_sending_timeout() -> None:
    assert slot_wait_seconds(Settings()) == 10.0  # the provider timeout, with the defaults
    tight = Settings(provider_timeout_seconds=4, sending_timeout_seconds=12)
    assert slot_wait_seconds(tight) == 0.5
    assert (
        slot_wait_seconds(Settings(provider_timeout_seconds=10, sending_timeout_seconds=11)) == 0.1
    )


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("CARILLON_SEND_CONCURRENCY", "0", "greater than or equal to 1"),
        ("CARILLON_SEND_CONCURRENCY", "1001", "less than or equal to 1000"),
        ("CARILLON_SEND_CONCURRENCY", "many", "a valid integer"),
        ("CARILLON_DELIVERY_BATCH_SIZE", "0", "greater than or equal to 1"),
        ("CARILLON_DELIVERY_BATCH_SIZE", "10001", "less than or equal to 10000"),
        ("CARILLON_DELIVERY_BATCH_SIZE", "1.5", "a valid integer"),
    ],
)
def test_a_bad_send_concurrency_or_batch_size_is_refused_at_start(
    settings_env: pytest.MonkeyPatch, variable: str, value: str, says: str
) -> None:
    settings_env.setenv(variable, value)
    get_settings.cache_clear()
    field = variable.removeprefix("CARILLON_").lower()
    with pytest.raises(ValidationError, match=f"{field}\n  Input should be {says}"):
        get_settings()


def test_a_send_job_claims_as_many_rows_as_the_batch_size_says(
    settings_env: pytest.MonkeyPatch, providers: Providers, tmp_path: Path
) -> None:
    planned = _plan_sms(5, tmp_path)
    configure(settings_env, delivery_batch_size=3)

    service.deliver_batch(planned[0].id, "sms")

    assert [d.status for d in deliveries()].count(models.SENT) == 3
    assert len(providers.twilio.requests) == 3


def test_threads_starting_together_share_one_sending_loop(providers: Providers) -> None:
    """Worker threads asking for the loop at once get the same one: a second loop built by a
    race would close the first under the calls of another thread."""
    start = threading.Barrier(8)
    found: list[object] = []

    def ask() -> None:
        start.wait()
        found.append(service.sender())

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(found) == 8 and len({id(s) for s in found}) == 1


# --------------------------------------------------------------------------- provider batching

META = "{channel: meta_audience, audience_id: '%s'}"


def _plan_audience(people: int, tmp_path: Path, *audiences: str) -> list[Delivery]:
    """One delivery per person and audience, each person with an e-mail and a phone of
    their own (so each row of an upload is told apart by either)."""
    texts = [journey_yaml(f"retarget-{a}", "Instagram Post Liked", META % a) for a in audiences]
    load(tmp_path, *texts)
    for i in range(people):
        route(person(f"p{i}", phone=f"+3361{i:07d}"), event(f"p{i}", "Instagram Post Liked"))
    return deliveries()


def _row_of(index: int) -> list[str]:
    return [sha256(f"p{index}@example.com"), sha256(f"3361{index:07d}")]


def test_people_added_to_one_audience_go_in_one_graph_call(
    providers: Providers, tmp_path: Path
) -> None:
    planned = _plan_audience(3, tmp_path, TEST_AUDIENCE_ID)

    service.deliver_batch(planned[0].id, "meta_audience")

    [request] = providers.meta.requests
    assert (request.method, request.path) == ("POST", f"/v21.0/{TEST_AUDIENCE_ID}/users")
    assert request.header("content-type") == "application/x-www-form-urlencoded"
    assert set(request.body) == {"payload", "access_token"}  # no session for one request
    assert request.body["access_token"] == providers.meta.access_token
    payload = json.loads(request.body["payload"])
    assert payload["schema"] == ["EMAIL", "PHONE"]
    assert sorted(payload["data"]) == sorted(_row_of(i) for i in range(3))
    sent = [row(d.id) for d in planned]
    assert {(d.status, d.status_code, d.attempts) for d in sent} == {(models.SENT, 200, 1)}
    assert len({d.provider_message_id for d in sent}) == 1  # the one upload's session id
    assert len(providers.meta.members[TEST_AUDIENCE_ID]) == 3


def test_two_audiences_make_two_calls(providers: Providers, tmp_path: Path) -> None:
    other = "23850000000000002"
    planned = _plan_audience(2, tmp_path, TEST_AUDIENCE_ID, other)

    service.deliver_batch(planned[0].id, "meta_audience")

    paths = sorted(r.path for r in providers.meta.requests)
    assert paths == [f"/v21.0/{TEST_AUDIENCE_ID}/users", f"/v21.0/{other}/users"]
    assert {len(json.loads(r.body["payload"])["data"]) for r in providers.meta.requests} == {2}
    assert {row(d.id).status for d in planned} == {models.SENT}


def test_a_row_meta_rejects_fails_its_own_delivery_only(
    providers: Providers, tmp_path: Path
) -> None:
    planned = _plan_audience(3, tmp_path, TEST_AUDIENCE_ID)
    bad_email_hash = _row_of(1)[0]
    providers.meta.fail_next(  # Graph's answer when it finds one entry invalid
        200,
        {
            "audience_id": TEST_AUDIENCE_ID,
            "session_id": "777",
            "num_received": 3,
            "num_invalid_entries": 1,
            "invalid_entry_samples": {bad_email_hash: "Invalid EMAIL value"},
        },
    )

    service.deliver_batch(planned[0].id, "meta_audience")

    assert len(providers.meta.requests) == 1
    by_person = {d.profile_id: row(d.id) for d in planned}
    rejected = [d for d in by_person.values() if d.status == models.FAILED]
    assert len(rejected) == 1 and rejected[0].id == _delivery_of(planned, "p1").id
    assert rejected[0].error == "Meta rejected this entry as invalid: Invalid EMAIL value"
    others = [d for d in by_person.values() if d.status != models.FAILED]
    assert {(d.status, d.provider_message_id) for d in others} == {(models.SENT, "777")}


@pytest.mark.parametrize(
    ("status", "code", "transient"),
    [(503, 2, True), (400, 100, False)],
    ids=["transient", "permanent"],
)
def test_an_error_of_the_call_answers_every_delivery_in_it(
    providers: Providers, tmp_path: Path, status: int, code: int, transient: bool
) -> None:
    planned = _plan_audience(3, tmp_path, TEST_AUDIENCE_ID)
    providers.meta.fail_next(status, graph_error(code, "Meta says no"))

    service.deliver_batch(planned[0].id, "meta_audience")

    assert len(providers.meta.requests) == 1
    after = [row(d.id) for d in planned]
    expected = models.PENDING if transient else models.FAILED  # a retry, or final
    assert {(d.status, d.attempts, d.error) for d in after} == {
        (expected, 1, f"{code}: Meta says no")
    }
    if transient:
        assert all(d.next_attempt_at is not None for d in after)


def _delivery_of(planned: list[Delivery], profile_user: str) -> Delivery:
    with session_scope() as session:
        profile_id = session.scalar(
            select(Identity.profile_id).where(
                Identity.kind == USER_ID, Identity.value == profile_user
            )
        )
    [found] = [d for d in planned if d.profile_id == profile_id]
    return found


def test_the_same_e_mail_to_many_people_is_one_request_and_each_delivery_is_sent(
    providers: Providers, tmp_path: Path
) -> None:
    """Two journeys' e-mails (a category each: their content differs) to three people: one
    request per journey, a personalization per person, each delivery recorded as sent."""
    load(
        tmp_path,
        journey_yaml("welcome", "Newsletter Subscribed", EMAIL),
        journey_yaml("promo", "Promo Started", EMAIL),
    )
    for i in range(3):
        route(person(f"p{i}"), event(f"p{i}", "Newsletter Subscribed"))
        route(event(f"p{i}", "Promo Started"))
    planned = deliveries()

    service.deliver_batch(planned[0].id, "email")

    accepted = {body["categories"][0]: (mid, body) for mid, body in providers.sendgrid.accepted}
    assert len(providers.sendgrid.requests) == 2 and set(accepted) == {"welcome", "promo"}
    for delivery in (row(d.id) for d in planned):
        message_id, body = accepted[delivery.journey_id]
        ids = [p["custom_args"]["carillon_delivery_id"] for p in body["personalizations"]]
        assert str(delivery.id) in ids and len(ids) == 3
        assert (delivery.status, delivery.provider_message_id) == (models.SENT, message_id)


def test_a_refused_shared_request_answers_each_delivery_as_a_lone_one_would(
    providers: Providers, tmp_path: Path
) -> None:
    load(tmp_path, journey_yaml("welcome", "Newsletter Subscribed", EMAIL))
    for i in range(3):
        route(person(f"p{i}"), event(f"p{i}", "Newsletter Subscribed"))
    planned = deliveries()
    providers.sendgrid.fail_next(503, "Service Unavailable")

    service.deliver_batch(planned[0].id, "email")

    assert len(providers.sendgrid.requests) == 1
    after = [row(d.id) for d in planned]
    assert {(d.status, d.attempts, d.status_code) for d in after} == {(models.PENDING, 1, 503)}
    assert all(d.next_attempt_at is not None for d in after)  # each retried on its own row
