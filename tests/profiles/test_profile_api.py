"""`GET /v1/profiles/{id}`: a person by any of their identities, to the admin token or a read
key only, and clear refusals for everything else."""

from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient

from tests.helpers import WRITE_KEY, Pipeline, basic
from tests.profiles.conftest import (
    ADMIN,
    ANONYMOUS,
    EMAIL,
    PHONE,
    READ_KEY,
    USER,
    bearer,
    shopper,
)


@pytest.mark.parametrize(
    "person_id",
    [USER, f"user:{USER}", f"anonymous:{ANONYMOUS}", f"email:{EMAIL}", f"phone:{PHONE}"],
)
def test_a_person_is_found_by_any_identity(
    client: TestClient, pipeline: Pipeline, person_id: str
) -> None:
    shopper(client, pipeline)
    answer = client.get(f"/v1/profiles/{person_id}", headers=bearer(READ_KEY))
    assert answer.status_code == 200, answer.text
    person = answer.json()
    assert person["traits"]["first_name"] == "Ada"
    assert {(i["kind"], i["value"]) for i in person["identities"]} == {
        ("user_id", USER),
        ("anonymous_id", ANONYMOUS),
        ("email", EMAIL),
        ("phone", PHONE),
    }


def test_the_person_shows_consent_per_channel_and_newest_history_first(
    client: TestClient, pipeline: Pipeline
) -> None:
    shopper(client, pipeline)
    person = client.get(f"/v1/profiles/{USER}", headers=bearer(ADMIN)).json()
    consent = {row["channel"]: row for row in person["consent"]}
    assert consent["sms"]["allowed"] is True
    assert consent["email"]["allowed"] is True and consent["email"]["state"] is None
    # Every installed channel is listed, SMS's explicit opt-in read through its spec.
    assert set(consent) >= {"email", "sms", "meta_audience"}
    names = [e["name"] for e in person["events"]]
    assert names[:3] == ["Cart Abandoned", "Instagram Post Liked", "Newsletter Subscribed"]
    assert "Product Viewed" in names  # the anonymous history came with the merge
    channels = {d["channel"]: d["status"] for d in person["deliveries"]}
    assert channels == {"sms": "dry_run", "meta_audience": "dry_run"}
    assert [t["journey_id"] for t in person["trips"] if t["status"] == "active"] == [
        "cart-abandonment"
    ]
    ids = [d["id"] for d in person["deliveries"]]
    assert ids == sorted(ids, reverse=True)


def test_the_history_is_bounded(client: TestClient, pipeline: Pipeline) -> None:
    shopper(client, pipeline)
    person = client.get(f"/v1/profiles/{USER}?limit=2", headers=bearer(ADMIN)).json()
    assert len(person["events"]) == 2 and len(person["deliveries"]) == 2
    assert client.get(f"/v1/profiles/{USER}?limit=0", headers=bearer(ADMIN)).status_code == 422
    assert client.get(f"/v1/profiles/{USER}?limit=201", headers=bearer(ADMIN)).status_code == 422


def test_an_unknown_person_is_404_naming_the_id_kinds(client: TestClient) -> None:
    answer = client.get("/v1/profiles/email:nobody@example.org", headers=bearer(ADMIN))
    assert answer.status_code == 404
    assert answer.json()["code"] == "not_found"
    assert "anonymous:<anonymousId>, email:<address>, phone:<E.164>" in answer.json()["message"]


@pytest.mark.parametrize(
    ("person_id", "why"),
    [
        ("email:", "names nobody"),
        ("phone:%20%20", "names nobody"),
        ("x" * 256, "at most 255"),
        ("user:a%01b", "control characters"),
    ],
)
def test_a_malformed_id_is_400(client: TestClient, person_id: str, why: str) -> None:
    for method in ("GET", "DELETE"):
        answer = client.request(method, f"/v1/profiles/{person_id}", headers=bearer(ADMIN))
        assert answer.status_code == 400, answer.text
        assert why in answer.json()["message"]
    export = client.get(f"/v1/profiles/{person_id}/export", headers=bearer(ADMIN))
    assert export.status_code == 400


def test_the_write_key_never_reads_people(client: TestClient, pipeline: Pipeline) -> None:
    shopper(client, pipeline)
    for headers in (basic(WRITE_KEY), bearer(WRITE_KEY)):
        for method, path in (
            ("GET", f"/v1/profiles/{USER}"),
            ("GET", f"/v1/profiles/{USER}/export"),
            ("DELETE", f"/v1/profiles/{USER}"),
        ):
            answer = client.request(method, path, headers=headers)
            assert answer.status_code == 403, (method, path, answer.text)
            assert "write key" in answer.json()["message"]
    assert client.get(f"/v1/profiles/{USER}", headers=bearer(ADMIN)).status_code == 200


def test_missing_or_wrong_tokens_are_401(client: TestClient) -> None:
    assert client.get(f"/v1/profiles/{USER}").status_code == 401
    assert client.get(f"/v1/profiles/{USER}", headers=bearer("not-a-key")).status_code == 401
    other = base64.b64encode(b"someone:secret").decode()
    wrong_basic = {"Authorization": f"Basic {other}"}
    assert client.get(f"/v1/profiles/{USER}", headers=wrong_basic).status_code == 401


def test_a_read_key_reads_but_cannot_erase(client: TestClient, pipeline: Pipeline) -> None:
    shopper(client, pipeline)
    answer = client.delete(f"/v1/profiles/{USER}", headers=bearer(READ_KEY))
    assert answer.status_code == 403
    assert "admin token" in answer.json()["message"]
    assert client.get(f"/v1/profiles/{USER}", headers=bearer(READ_KEY)).status_code == 200


def test_closed_when_no_token_or_read_key_is_set(settings_env: pytest.MonkeyPatch) -> None:
    from app.main import create_app

    settings_env.delenv("CARILLON_ADMIN_TOKEN", raising=False)
    settings_env.delenv("CARILLON_READ_KEYS", raising=False)
    answer = TestClient(create_app()).get(f"/v1/profiles/{USER}", headers=bearer(ADMIN))
    assert answer.status_code == 503
    assert "CARILLON_READ_KEYS" in answer.json()["message"]
