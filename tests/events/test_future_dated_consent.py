"""An event dated in the future cannot lock a person's consent, and cannot override what the
person did themselves: through the HTTP API, the worker, the unsubscribe link and Twilio's
inbound webhook, on the real clock (as an attacker or a broken client would meet it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app import clock, unsubscribe
from app.db import session_scope
from app.events.event_time import FUTURE_TOLERANCE
from app.main import create_app
from app.profiles import repository
from app.profiles.models import Identity
from app.settings import get_settings
from tests.helpers import Pipeline, basic, twilio_signature

PUBLIC_URL = "https://carillon.example.com"
TWILIO_TOKEN = "twilio-test-auth-token"
PHONE = "+33612345678"
YEAR_9999 = "9999-12-31T23:59:59Z"


@pytest.fixture
def api(settings_env: pytest.MonkeyPatch) -> TestClient:
    """The API with Twilio's inbound webhook verifiable (it signs the public URL)."""
    settings_env.setenv("CARILLON_PUBLIC_URL", PUBLIC_URL)
    settings_env.setenv("TWILIO_AUTH_TOKEN", TWILIO_TOKEN)
    return TestClient(create_app(), base_url=PUBLIC_URL)


def identify(api: TestClient, pipeline: Pipeline, traits: dict[str, Any], **fields: str) -> None:
    body = {"userId": "ada", "traits": traits, **fields}
    response = api.post("/v1/identify", json=body, headers=basic())
    assert response.status_code == 200, response.text
    pipeline.drain()


def profile_id() -> str:
    with session_scope() as session:
        identity = session.get(Identity, ("user_id", "ada"))
        assert identity is not None
        return identity.profile_id


def consent() -> dict[str, Any]:
    with session_scope() as session:
        traits = repository.traits_of(session, profile_id())
    return {k: v for k, v in traits.items() if k.endswith("_consent")}


def unsubscribe_by_link(api: TestClient) -> None:
    token = unsubscribe.make_token(get_settings(), 1, profile_id())
    answer = api.post(
        f"/unsubscribe/{token}",
        content="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 200
    assert "Unsubscribed" in answer.text


def reply_stop(api: TestClient, sid: str) -> None:
    params = {"MessageSid": sid, "From": PHONE, "To": "+15005550006", "Body": "STOP"}
    path = "/webhooks/twilio/inbound"
    signature = twilio_signature(TWILIO_TOKEN, PUBLIC_URL + path, params)
    answer = api.post(path, data=params, headers={"X-Twilio-Signature": signature})
    assert answer.status_code == 200, answer.text


def test_a_year_9999_identify_does_not_lock_consent(api: TestClient, pipeline: Pipeline) -> None:
    subscribed = {"email_consent": "subscribed", "sms_consent": "opted_in"}
    identify(
        api,
        pipeline,
        {"email": "ada@example.com", "phone": PHONE, **subscribed},
        timestamp=YEAR_9999,
    )
    assert consent() == subscribed

    # A newer identify changes it again...
    identify(api, pipeline, {"email_consent": "unsubscribed"})
    assert consent()["email_consent"] == "unsubscribed"
    identify(api, pipeline, {"email_consent": "subscribed"})
    assert consent()["email_consent"] == "subscribed"

    # ...and so do the person's own actions: the unsubscribe link and an SMS STOP.
    unsubscribe_by_link(api)
    reply_stop(api, "SM" + "1" * 32)
    assert consent() == {"email_consent": "unsubscribed", "sms_consent": "opted_out"}


def test_an_own_action_wins_over_an_event_dated_ahead_of_it(
    api: TestClient, pipeline: Pipeline
) -> None:
    """Within the tolerance a clock a little ahead keeps its times; the person's action is
    still stamped after them, so the same stale claim sent again cannot undo it."""
    ahead = (clock.now() + FUTURE_TOLERANCE - timedelta(seconds=30)).isoformat()
    stale = {"email_consent": "subscribed", "sms_consent": "opted_in"}
    identify(api, pipeline, {"phone": PHONE, **stale}, timestamp=ahead)
    assert consent() == stale

    unsubscribe_by_link(api)
    reply_stop(api, "SM" + "2" * 32)
    identify(api, pipeline, stale, timestamp=ahead)
    assert consent() == {"email_consent": "unsubscribed", "sms_consent": "opted_out"}


def test_a_trait_locked_before_the_fix_is_unlocked_by_the_person(
    api: TestClient, pipeline: Pipeline
) -> None:
    """Rows written while ingest still took far-future times as they came."""
    identify(api, pipeline, {"phone": PHONE})
    locked_at = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    with session_scope() as session:
        repository.upsert_traits(
            session, profile_id(), {"email_consent": "subscribed"}, locked_at, "legacy"
        )

    unsubscribe_by_link(api)
    assert consent()["email_consent"] == "unsubscribed"
    # Stamped with its own time, not after year 9999: the shop can re-subscribe the person.
    identify(api, pipeline, {"email_consent": "subscribed"})
    assert consent()["email_consent"] == "subscribed"
