"""MetaCustomAudience against the local Graph API stand-in."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from app.settings import Settings
from channels.base import Message, Outcome, Recipient
from channels.meta_audience.adapter import (
    MAX_ROWS_PER_REQUEST,
    MetaCustomAudience,
    batches,
    normalize_email,
    normalize_phone,
)
from channels.meta_audience.settings import MetaSettings
from channels.settings import read
from tests.helpers import (
    EMAIL_HASH,
    PHONE_HASH,
    RAW_EMAIL,
    RAW_PHONE,
    assert_no_raw_identifier,
    sha256,
)
from tests.providers.meta import (
    MAX_ENTRIES,
    TEST_ACCESS_TOKEN,
    TEST_AUDIENCE_ID,
    MetaGraphServer,
    graph_error,
)
from tests.providers.server import RecordedRequest, unused_port

# Normalized by hand, following Meta's rules, independently of the adapter's code.


def message(
    email: str | None = RAW_EMAIL,
    phone: str | None = RAW_PHONE,
    audience_id: str = TEST_AUDIENCE_ID,
    **content: str,
) -> Message:
    return Message(
        delivery_id="9",
        channel="meta_audience",
        recipient=Recipient(profile_id="p-3", email=email, phone=phone),
        content={"audience_id": audience_id, **content},
        journey_id="instagram-retarget",
    )


@pytest.fixture
def channel(
    meta_server: MetaGraphServer, make_settings: Callable[..., Settings]
) -> MetaCustomAudience:
    return MetaCustomAudience(make_settings(**meta_server.settings_overrides()), read(MetaSettings))


def payload_of(request: RecordedRequest) -> dict[str, object]:
    payload = json.loads(request.body["payload"])
    assert isinstance(payload, dict)
    return payload


def test_person_with_email_and_phone_is_added_by_hashes_only(
    channel: MetaCustomAudience, meta_server: MetaGraphServer
) -> None:
    result = channel.send(message())

    assert result.outcome is Outcome.SENT, result.error
    (request,) = meta_server.requests
    assert (request.method, request.path) == ("POST", f"/v21.0/{TEST_AUDIENCE_ID}/users")
    assert request.header("content-type") == "application/x-www-form-urlencoded"
    assert request.body["access_token"] == TEST_ACCESS_TOKEN
    assert payload_of(request) == {
        "schema": ["EMAIL", "PHONE"],
        "is_raw": True,
        "data": [[EMAIL_HASH, PHONE_HASH]],
    }
    assert_no_raw_identifier(request, RAW_EMAIL, RAW_PHONE, "33612345678", "0612345678")
    # The provider id is Graph's upload session id.
    assert result.provider_message_id is not None
    assert result.provider_message_id.isdigit()
    assert result.status_code == 200


def test_email_only_leaves_the_phone_blank(
    channel: MetaCustomAudience, meta_server: MetaGraphServer
) -> None:
    assert channel.send(message(phone=None)).outcome is Outcome.SENT
    request = meta_server.requests[0]
    assert payload_of(request) == {
        "schema": ["EMAIL", "PHONE"],
        "is_raw": True,
        "data": [[EMAIL_HASH, ""]],
    }
    assert_no_raw_identifier(request, RAW_EMAIL)


def test_phone_only_leaves_the_email_blank(
    channel: MetaCustomAudience, meta_server: MetaGraphServer
) -> None:
    assert channel.send(message(email=None, phone="0033 6 12 34 56 78")).outcome is Outcome.SENT
    request = meta_server.requests[0]
    assert payload_of(request)["data"] == [["", sha256("33612345678")]]
    assert_no_raw_identifier(request, "0033 6 12 34 56 78", "33612345678")


def test_remove_deletes_the_same_hashes_from_the_audience(
    channel: MetaCustomAudience, meta_server: MetaGraphServer
) -> None:
    assert channel.send(message()).outcome is Outcome.SENT
    assert meta_server.members[TEST_AUDIENCE_ID] == {(EMAIL_HASH, PHONE_HASH)}

    result = channel.send(message(operation="remove"))

    assert result.outcome is Outcome.SENT, result.error
    added, removed = meta_server.requests
    assert (removed.method, removed.path) == ("DELETE", f"/v21.0/{TEST_AUDIENCE_ID}/users")
    assert removed.body["access_token"] == TEST_ACCESS_TOKEN
    assert payload_of(removed) == payload_of(added)
    assert_no_raw_identifier(removed, RAW_EMAIL, RAW_PHONE, "33612345678", "0612345678")
    assert meta_server.members[TEST_AUDIENCE_ID] == set()
    assert meta_server.removed == [{"audience_id": TEST_AUDIENCE_ID, "payload": payload_of(added)}]


@pytest.mark.parametrize("operation", ["delete", "REMOVE", "sync"])
def test_unknown_operation_fails_permanently_without_a_call(
    channel: MetaCustomAudience, meta_server: MetaGraphServer, operation: str
) -> None:
    result = channel.send(message(operation=operation))
    assert (result.outcome, result.transient) == (Outcome.FAILED, False)
    assert f"operation {operation!r} is not one of: add, remove" == result.error
    assert meta_server.requests == []


def people(count: int) -> list[Recipient]:
    return [
        Recipient(profile_id=f"p-{i}", email=f" Person.{i}@Example.com", phone=f"+3361{i:07d}")
        for i in range(count)
    ]


def test_more_than_the_per_request_limit_is_split_into_one_upload_session(
    channel: MetaCustomAudience, meta_server: MetaGraphServer
) -> None:
    assert MAX_ROWS_PER_REQUEST == MAX_ENTRIES == 10_000
    everyone = people(MAX_ROWS_PER_REQUEST + 1)

    result = channel.update(TEST_AUDIENCE_ID, "add", everyone)

    assert result.outcome is Outcome.SENT, result.error
    first, second = meta_server.requests
    assert [len(payload_of(r)["data"]) for r in (first, second)] == [10_000, 1]  # type: ignore[arg-type]
    sessions = [json.loads(r.body["session"]) for r in (first, second)]
    assert sessions[0]["session_id"] == sessions[1]["session_id"] > 0
    assert [(s["batch_seq"], s["last_batch_flag"]) for s in sessions] == [(1, False), (2, True)]
    assert {s["estimated_num_total"] for s in sessions} == {10_001}
    assert result.provider_message_id == str(sessions[0]["session_id"])
    assert payload_of(second)["data"] == [
        [sha256("person.10000@example.com"), sha256("33610010000")]
    ]
    assert len(meta_server.members[TEST_AUDIENCE_ID]) == 10_001
    for request in (first, second):
        assert "example.com" not in request.text.lower()
        for person in (everyone[0], everyone[4321], everyone[-1]):
            assert person.email and person.phone
            assert_no_raw_identifier(request, person.email, person.phone, person.phone[1:])


def test_a_failed_batch_fails_the_update_and_says_which(
    channel: MetaCustomAudience, meta_server: MetaGraphServer
) -> None:
    meta_server.fail_next(
        200, {"audience_id": TEST_AUDIENCE_ID, "session_id": "1", "num_received": 10_000}
    )
    meta_server.fail_next(503, graph_error(2, "Service temporarily unavailable"))
    result = channel.update(TEST_AUDIENCE_ID, "remove", people(MAX_ROWS_PER_REQUEST + 5))
    assert (result.outcome, result.status_code, result.transient) == (Outcome.FAILED, 503, True)
    assert result.error == "batch 2 of 2: 2: Service temporarily unavailable"
    assert [r.method for r in meta_server.requests] == ["DELETE", "DELETE"]


def test_people_without_identifiers_are_left_out_of_a_batch(
    channel: MetaCustomAudience, meta_server: MetaGraphServer
) -> None:
    nobody = Recipient(profile_id="p-x")
    result = channel.update(TEST_AUDIENCE_ID, "add", [nobody, *people(2)])
    assert result.outcome is Outcome.SENT
    assert len(payload_of(meta_server.requests[0])["data"]) == 2  # type: ignore[arg-type]
    assert "session" not in meta_server.requests[0].body


def test_an_update_with_nobody_to_match_sends_nothing(
    channel: MetaCustomAudience, meta_server: MetaGraphServer
) -> None:
    for group in ([], [Recipient(profile_id="a"), Recipient(profile_id="b", email=" ")]):
        result = channel.update(TEST_AUDIENCE_ID, "add", group)
        assert (result.outcome, result.transient) == (Outcome.FAILED, False)
        assert f"none of {len(group)} people" in (result.error or "")
    assert meta_server.requests == []


def test_batches_refuse_a_size_below_one() -> None:
    assert batches([["a", ""]] * 5, size=2) == [[["a", ""]] * 2, [["a", ""]] * 2, [["a", ""]]]
    with pytest.raises(ValueError, match="at least 1"):
        batches([["a", ""]], size=0)


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("  Ann@Example.COM\t", "ann@example.com"),
        ("bob@example.com", "bob@example.com"),
    ],
)
def test_email_normalization(raw: str, normalized: str) -> None:
    assert normalize_email(raw) == normalized


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("+33 6 12 34 56 78", "33612345678"),
        ("+33 (0)6 12 34 56 78", "33612345678"),
        ("0033612345678", "33612345678"),
        ("+1 (650) 555-1212", "16505551212"),
        ("tel:+44 7700-900123", "447700900123"),
    ],
)
def test_phone_normalization(raw: str, normalized: str) -> None:
    assert normalize_phone(raw) == normalized


@pytest.mark.parametrize(("email", "phone"), [(None, None), ("  ", "--")])
def test_no_identifier_fails_permanently_without_a_call(
    channel: MetaCustomAudience,
    meta_server: MetaGraphServer,
    email: str | None,
    phone: str | None,
) -> None:
    result = channel.send(message(email=email, phone=phone))
    assert (result.outcome, result.transient) == (Outcome.FAILED, False)
    assert "neither e-mail nor phone" in (result.error or "")
    assert meta_server.requests == []


@pytest.mark.parametrize("audience_id", ["", "abc", "123/../456"])
def test_bad_audience_id_fails_permanently_without_a_call(
    channel: MetaCustomAudience, meta_server: MetaGraphServer, audience_id: str
) -> None:
    result = channel.send(message(audience_id=audience_id))
    assert (result.outcome, result.transient) == (Outcome.FAILED, False)
    assert "audience_id" in (result.error or "")
    assert meta_server.requests == []


def test_invalid_token_is_permanent_with_graphs_code_and_words(
    meta_server: MetaGraphServer, make_settings: Callable[..., Settings]
) -> None:
    channel = MetaCustomAudience(
        make_settings(meta_access_token="EAAB-expired", meta_graph_url=meta_server.base_url),
        read(MetaSettings),
    )
    result = channel.send(message())
    assert result.outcome is Outcome.FAILED
    assert (result.status_code, result.transient) == (400, False)
    assert result.error == "190: Invalid OAuth access token - Cannot parse access token"


def test_unknown_audience_is_permanent(
    channel: MetaCustomAudience, meta_server: MetaGraphServer
) -> None:
    meta_server.audience_ids = {TEST_AUDIENCE_ID}
    try:
        result = channel.send(message(audience_id="999"))
    finally:
        meta_server.audience_ids = None
    assert (result.outcome, result.transient) == (Outcome.FAILED, False)
    assert (result.error or "").startswith("100/33: Unsupported post request.")


@pytest.mark.parametrize(
    ("code", "subcode"),
    [(4, None), (17, 2446079), (32, None), (613, 1487742), (80003, 2446079)],
)
def test_throttling_codes_are_transient(
    channel: MetaCustomAudience, meta_server: MetaGraphServer, code: int, subcode: int | None
) -> None:
    meta_server.fail_next(400, graph_error(code, "User request limit reached", subcode=subcode))
    result = channel.send(message())
    assert (result.outcome, result.status_code, result.transient) == (
        Outcome.FAILED,
        400,
        True,
    )
    assert (result.error or "").startswith(f"{code}")


def test_business_use_case_header_gives_the_wait(
    channel: MetaCustomAudience, meta_server: MetaGraphServer
) -> None:
    usage = {
        "1234567890": [
            {
                "type": "custom_audience",
                "call_count": 100,
                "total_cputime": 40,
                "total_time": 35,
                "estimated_time_to_regain_access": 5,
            }
        ]
    }
    meta_server.fail_next(
        400,
        graph_error(80003, "There have been too many calls to this ad-account."),
        {"X-Business-Use-Case-Usage": json.dumps(usage)},
    )
    result = channel.send(message())
    assert result.transient is True
    assert result.retry_after_seconds == 300.0


def test_http_429_with_retry_after_is_transient(
    channel: MetaCustomAudience, meta_server: MetaGraphServer
) -> None:
    meta_server.fail_next(
        429, graph_error(4, "Application request limit reached"), {"Retry-After": "12"}
    )
    result = channel.send(message())
    assert (result.transient, result.retry_after_seconds) == (True, 12.0)


def test_server_error_without_json_is_transient(
    channel: MetaCustomAudience, meta_server: MetaGraphServer
) -> None:
    meta_server.fail_next(502, "<html>Bad Gateway</html>")
    result = channel.send(message())
    assert (result.outcome, result.status_code, result.transient) == (Outcome.FAILED, 502, True)


def test_invalid_parameter_is_permanent(
    channel: MetaCustomAudience, meta_server: MetaGraphServer
) -> None:
    meta_server.fail_next(400, graph_error(100, "(#100) Invalid parameter"))
    result = channel.send(message())
    assert (result.transient, result.error) == (False, "100: (#100) Invalid parameter")


def test_every_entry_invalid_is_a_permanent_failure(
    channel: MetaCustomAudience, meta_server: MetaGraphServer
) -> None:
    meta_server.fail_next(
        200,
        {
            "audience_id": TEST_AUDIENCE_ID,
            "session_id": "4242",
            "num_received": 1,
            "num_invalid_entries": 1,
            "invalid_entry_samples": {EMAIL_HASH: "Invalid EMAIL value"},
        },
    )
    result = channel.send(message())
    assert (result.outcome, result.transient) == (Outcome.FAILED, False)
    assert "rejected all 1 entries" in (result.error or "")


def test_connection_refused_is_transient(make_settings: Callable[..., Settings]) -> None:
    channel = MetaCustomAudience(
        make_settings(
            meta_access_token=TEST_ACCESS_TOKEN,
            meta_graph_url=f"http://127.0.0.1:{unused_port()}",
        ),
        read(MetaSettings),
    )
    result = channel.send(message())
    assert (result.outcome, result.transient, result.status_code) == (Outcome.FAILED, True, None)
    assert "unreachable" in (result.error or "")


def test_timeout_is_the_configured_one_and_transient(
    meta_server: MetaGraphServer, make_settings: Callable[..., Settings]
) -> None:
    channel = MetaCustomAudience(
        make_settings(**meta_server.settings_overrides(), provider_timeout_seconds=0.3),
        read(MetaSettings),
    )
    meta_server.fail_next(200, {"audience_id": TEST_AUDIENCE_ID}, delay_seconds=10)
    result = channel.send(message())
    assert (result.outcome, result.transient) == (Outcome.FAILED, True)


def several(*recipients: Recipient) -> list[Message]:
    return [
        Message(str(i), "meta_audience", r, {"audience_id": TEST_AUDIENCE_ID})
        for i, r in enumerate(recipients)
    ]


def test_one_upload_answers_each_message_and_one_without_identifiers_fails_alone(
    channel: MetaCustomAudience, meta_server: MetaGraphServer
) -> None:
    nobody = Recipient(profile_id="p-x")
    results = channel.send_many(several(nobody, *people(2)))

    assert [r.outcome for r in results] == [Outcome.FAILED, Outcome.SENT, Outcome.SENT]
    assert results[0].error == "recipient p-x has neither e-mail nor phone"
    assert not results[0].transient
    [request] = meta_server.requests
    assert len(payload_of(request)["data"]) == 2  # type: ignore[arg-type]
    assert len({channel.batch_key(m) for m in several(*people(3))}) == 1


def test_invalid_entries_meta_does_not_name_leave_the_others_to_a_retry(
    channel: MetaCustomAudience, meta_server: MetaGraphServer
) -> None:
    """Meta counts 2 invalid entries and samples one: the named row fails for good, the two
    others cannot be told apart and fail as transient (a retry adds them, or tells)."""
    named = sha256("person.0@example.com")
    meta_server.fail_next(
        200,
        {
            "audience_id": TEST_AUDIENCE_ID,
            "session_id": "5",
            "num_received": 3,
            "num_invalid_entries": 2,
            "invalid_entry_samples": {named: "Invalid EMAIL value"},
        },
    )
    first, *others = channel.send_many(several(*people(3)))

    assert (first.outcome, first.transient) == (Outcome.FAILED, False)
    assert {(r.outcome, r.transient) for r in others} == {(Outcome.FAILED, True)}
    assert others[0].error == (
        "Meta rejected 2 of 3 entries and named 1: this one may be among the others"
    )


def test_a_bad_audience_fails_every_message_of_the_batch_without_a_call(
    channel: MetaCustomAudience, meta_server: MetaGraphServer
) -> None:
    messages = [message(audience_id="not-an-id"), message(audience_id="not-an-id")]
    results = channel.send_many(messages)
    assert {(r.outcome, r.transient) for r in results} == {(Outcome.FAILED, False)}
    assert "is not a Meta custom audience id" in (results[0].error or "")
    assert meta_server.requests == []
