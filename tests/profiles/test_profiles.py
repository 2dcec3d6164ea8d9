"""The profile store: identities, last-write-wins traits, merges — under concurrency too."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import select

from app.db import session_scope
from app.events import routing
from app.events.models import Event
from app.profiles import repository
from app.profiles.models import Identity, Profile
from tests.helpers import at, ingest, process, profile_of


def test_identify_sets_traits_and_contact_identities() -> None:
    process(
        ingest(
            {
                "type": "identify",
                "userId": "u1",
                "timestamp": at(0),
                "traits": {
                    "email": "alice@example.com",
                    "phone": "+33612345678",
                    "first_name": "Alice",
                },
            }
        )
    )
    alice = profile_of("user_id", "u1")
    assert alice["traits"]["first_name"] == "Alice"
    assert alice["email"] == "alice@example.com"
    assert profile_of("email", "alice@example.com")["id"] == alice["id"]
    assert profile_of("phone", "+33612345678")["id"] == alice["id"]


def test_an_older_identify_arriving_late_does_not_overwrite_a_newer_trait() -> None:
    process(
        ingest(
            {
                "type": "identify",
                "userId": "u1",
                "timestamp": at(10),
                "messageId": "new",
                "traits": {"plan": "pro", "city": "Lyon"},
            },
        )
    )
    process(
        ingest(
            {
                "type": "identify",
                "userId": "u1",
                "timestamp": at(5),
                "messageId": "old",
                "traits": {"plan": "free", "newsletter": True},
            },
        )
    )
    traits = profile_of("user_id", "u1")["traits"]
    assert traits == {"plan": "pro", "city": "Lyon", "newsletter": True}


def test_identify_after_anonymous_events_keeps_the_anonymous_history() -> None:
    process(
        ingest(
            {
                "type": "track",
                "anonymousId": "anon-1",
                "event": "Product Viewed",
                "timestamp": at(0),
            },
            {
                "type": "identify",
                "anonymousId": "anon-1",
                "timestamp": at(1),
                "traits": {"utm_source": "instagram"},
            },
        )
    )
    anonymous = profile_of("anonymous_id", "anon-1")
    process(
        ingest(
            {
                "type": "identify",
                "userId": "u1",
                "anonymousId": "anon-1",
                "timestamp": at(2),
                "traits": {"email": "bob@example.com"},
            }
        )
    )
    known = profile_of("user_id", "u1")
    assert known["id"] == anonymous["id"]
    assert known["traits"] == {"utm_source": "instagram", "email": "bob@example.com"}
    with session_scope() as session:
        owners = set(session.scalars(select(Event.profile_id)))
    assert owners == {known["id"]}


def test_known_user_seen_on_a_new_anonymous_device_merges_that_device() -> None:
    process(
        ingest(
            {
                "type": "identify",
                "userId": "u1",
                "timestamp": at(0),
                "traits": {"first_name": "Chloé"},
            }
        )
    )
    process(
        ingest(
            {"type": "track", "anonymousId": "phone-app", "event": "Liked", "timestamp": at(1)},
            {
                "type": "identify",
                "anonymousId": "phone-app",
                "timestamp": at(2),
                "traits": {"device": "ios"},
            },
        )
    )
    assert profile_of("anonymous_id", "phone-app")["id"] != profile_of("user_id", "u1")["id"]
    process(
        ingest(
            {
                "type": "track",
                "userId": "u1",
                "anonymousId": "phone-app",
                "event": "Opened",
                "timestamp": at(3),
            }
        )
    )
    merged = profile_of("user_id", "u1")
    assert merged["id"] == profile_of("anonymous_id", "phone-app")["id"]
    assert merged["traits"] == {"first_name": "Chloé", "device": "ios"}
    with session_scope() as session:
        tombstones = list(session.scalars(select(Profile).where(Profile.merged_into.is_not(None))))
    assert [t.merged_into for t in tombstones] == [merged["id"]]


def test_a_shared_device_does_not_merge_two_known_people() -> None:
    process(
        ingest(
            {
                "type": "identify",
                "userId": "u1",
                "anonymousId": "kiosk",
                "timestamp": at(0),
                "traits": {"first_name": "Ana"},
            }
        )
    )
    process(
        ingest(
            {
                "type": "identify",
                "userId": "u2",
                "anonymousId": "kiosk",
                "timestamp": at(1),
                "traits": {"first_name": "Ben"},
            }
        )
    )
    assert profile_of("user_id", "u1")["traits"] == {"first_name": "Ana"}
    assert profile_of("user_id", "u2")["traits"] == {"first_name": "Ben"}


def test_alias_merges_two_ids() -> None:
    process(
        ingest(
            {
                "type": "identify",
                "userId": "old-crm-id",
                "timestamp": at(0),
                "traits": {"lifecycle_stage": "regular"},
            },
            {
                "type": "identify",
                "userId": "shop-42",
                "timestamp": at(1),
                "traits": {"email": "dee@example.com"},
            },
        )
    )
    process(
        ingest(
            {"type": "alias", "userId": "shop-42", "previousId": "old-crm-id", "timestamp": at(2)}
        )
    )
    merged = profile_of("user_id", "shop-42")
    assert profile_of("user_id", "old-crm-id")["id"] == merged["id"]
    assert merged["traits"] == {"lifecycle_stage": "regular", "email": "dee@example.com"}


def test_contact_owned_by_someone_else_is_not_stolen() -> None:
    process(
        ingest(
            {
                "type": "identify",
                "userId": "u1",
                "timestamp": at(0),
                "traits": {"email": "family@example.com"},
            },
            {
                "type": "identify",
                "userId": "u2",
                "timestamp": at(1),
                "traits": {"email": "family@example.com"},
            },
        )
    )
    assert profile_of("email", "family@example.com")["id"] == profile_of("user_id", "u1")["id"]
    assert profile_of("user_id", "u2")["email"] == "family@example.com"


def _identify_calls(seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    calls = []
    for n in range(1000):
        user = f"user-{n % 25}"
        call = {
            "type": "identify",
            "userId": user,
            "messageId": f"msg-{n:04d}",
            # Distinct timestamps per user, so "in order" has one unambiguous answer.
            "timestamp": at(n),
            "traits": {
                rng.choice(["plan", "city", "score", "stage"]): rng.randint(0, 9),
                "last_seen": n,
            },
        }
        if n % 2:
            call["anonymousId"] = f"anon-{n % 25}-{n % 3}"
        calls.append(call)
    return calls


def _expected(calls: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    expected: dict[str, dict[str, Any]] = {}
    for call in calls:  # in order of time: the last write wins
        expected.setdefault(call["userId"], {}).update(call["traits"])
    return expected


def test_shuffled_concurrent_identifies_converge_to_the_in_order_traits() -> None:
    calls = _identify_calls(seed=7)
    shuffled = calls[:]
    random.Random(99).shuffle(shuffled)
    ids = ingest(*shuffled)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(routing.process_one, ids))

    with session_scope() as session:
        unprocessed = session.scalars(select(Event.id).where(Event.processed_at.is_(None)))
        assert list(unprocessed) == []
        for user, traits in _expected(calls).items():
            identity = session.get(Identity, ("user_id", user))
            assert identity is not None
            assert repository.traits_of(session, identity.profile_id) == traits, user
        # Every anonymous id of a user resolves to that user's one profile.
        for n in range(1, 1000, 2):
            anon = session.get(Identity, ("anonymous_id", f"anon-{n % 25}-{n % 3}"))
            user = session.get(Identity, ("user_id", f"user-{n % 25}"))
            assert anon is not None and user is not None
            assert anon.profile_id == user.profile_id
