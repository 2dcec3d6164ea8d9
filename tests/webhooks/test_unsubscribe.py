"""The unsubscribe link end to end: the e-mail's List-Unsubscribe header, the one-click POST,
the next e-mail suppressed; and the tokens' refusals."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app import signing, unsubscribe
from app.clock import ManualClock
from app.delivery.models import Delivery
from app.journeys import catalog
from app.settings import Settings, get_settings
from tests.helpers import Pipeline, deliveries, ingest, traits_of
from tests.providers.sendgrid import SendGridServer
from tests.webhooks.conftest import PUBLIC_URL, SECRET, history_rows, send_cart_reminder


def link_of(sendgrid: SendGridServer) -> str:
    headers = sendgrid.requests[-1].body["headers"]
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    found = re.fullmatch(r"<(.+)>", headers["List-Unsubscribe"])
    assert found, headers["List-Unsubscribe"]
    return found.group(1)


def test_one_click_unsubscribe_end_to_end(
    client: TestClient,
    sendgrid: SendGridServer,
    email_delivery: Delivery,
    pipeline: Pipeline,
    manual_clock: ManualClock,
) -> None:
    link = link_of(sendgrid)
    assert link.startswith(f"{PUBLIC_URL}/unsubscribe/")
    parts = {p["type"]: p["value"] for p in sendgrid.requests[-1].body["content"]}
    assert f'href="{link}"' in parts["text/html"]  # the footer, as the template had no link
    assert link in parts["text/plain"]
    path = link.removeprefix(PUBLIC_URL)

    page = client.get(path)  # a link scanner or the person looking: nothing changes
    assert page.status_code == 200
    assert 'name="List-Unsubscribe" value="One-Click"' in page.text
    assert "email_consent" not in traits_of("user_id", "alice")

    answer = client.post(
        path,
        content="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 200
    assert "Unsubscribed" in answer.text
    assert traits_of("user_id", "alice")["email_consent"] == "unsubscribed"
    assert history_rows() == [
        (
            email_delivery.id,
            "unsubscribe_link",
            "unsubscribe",
            "one-click link",
            f"unsubscribe:{email_delivery.id}",
        )
    ]
    assert client.post(path).status_code == 200  # clicked twice: still one history row
    assert len(history_rows()) == 1

    # A week later Alice abandons another cart: the reminder is planned and suppressed.
    requests_before = len(sendgrid.requests)
    manual_clock.advance(timedelta(days=8))
    send_cart_reminder(pipeline, manual_clock, total=55)
    latest = deliveries()[-1]
    assert latest.id != email_delivery.id
    assert (latest.channel, latest.status) == ("email", "suppressed")
    assert latest.error == "suppressed: email unsubscribed"
    assert len(sendgrid.requests) == requests_before


def test_forged_and_damaged_tokens_change_nothing(
    client: TestClient, sendgrid: SendGridServer, email_delivery: Delivery
) -> None:
    token = link_of(sendgrid).rsplit("/", 1)[1]
    payload, signature = token.split(".")
    other_key = Settings(secret_key="another-secret-0123456789")
    forged = unsubscribe.make_token(other_key, email_delivery.id, email_delivery.profile_id)
    flipped = f"{payload}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"
    for bad, status in [
        (forged, 403),
        (flipped, 403),
        (payload, 400),
        ("not-a-token", 400),
        (f"{payload[:-3]}.{signature}", 403),  # still base64: a claim we did not sign
        ("@@@@.AAAA", 400),
    ]:
        for method in ("GET", "POST"):
            answer = client.request(method, f"/unsubscribe/{bad}")
            assert answer.status_code == status, (bad, method)
            assert "Nothing was changed" in answer.text
    assert "email_consent" not in traits_of("user_id", "alice")
    assert history_rows() == []


def test_a_template_places_the_link_itself(
    tmp_path, sendgrid: SendGridServer, pipeline: Pipeline
) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "news.yaml").write_text(
        """
id: monthly-news
name: Monthly news
trigger: {event: News Ready}
steps:
  - send:
      channel: email
      subject: "Nouveautés"
      html: "<p>Bonjour</p><a href='{{ unsubscribe_url }}'>Désinscription</a>"
      text: "Bonjour. Désinscription : {{ unsubscribe_url }}"
""",
        encoding="utf-8",
    )
    catalog.sync_directory(tmp_path)
    ingest(
        {"type": "identify", "userId": "bo", "traits": {"email": "bo@example.com"}},
        {"type": "track", "userId": "bo", "event": "News Ready"},
    )
    pipeline.drain()
    [delivery] = deliveries()
    assert delivery.status == "sent", delivery.error
    assert unsubscribe.PLACEHOLDER in delivery.content["html"]  # the stored rendering
    link = link_of(sendgrid)
    parts = {p["type"]: p["value"] for p in sendgrid.requests[-1].body["content"]}
    assert parts["text/html"] == f"<p>Bonjour</p><a href='{link}'>Désinscription</a>"
    assert parts["text/plain"] == f"Bonjour. Désinscription : {link}"


def test_tokens_round_trip_and_need_the_same_secret() -> None:
    settings = Settings(secret_key=SECRET)
    claim = unsubscribe.read_token(settings, unsubscribe.make_token(settings, 42, "p-1"))
    assert (claim.delivery_id, claim.profile_id) == (42, "p-1")
    with pytest.raises(unsubscribe.ForgedToken):
        unsubscribe.read_token(
            Settings(secret_key=SECRET + "x"), unsubscribe.make_token(settings, 42, "p-1")
        )
    with pytest.raises(ValueError, match="secret_key"):
        Settings(secret_key="short")
    get_settings.cache_clear()


def test_without_a_secret_no_key_is_derived_from_public_settings(tmp_path: Path) -> None:
    """Two embedded installs with the same database URL (every default install) must not
    accept each other's links: each makes its own random key beside its database."""
    first, second = tmp_path / "one", tmp_path / "two"
    tokens = []
    for home in (first, second):
        home.mkdir()
        settings = Settings(secret_key=None, database_url=f"sqlite:///{home}/carillon.db")
        tokens.append(unsubscribe.make_token(settings, 1, "p"))
    assert tokens[0] != tokens[1]
    with pytest.raises(unsubscribe.ForgedToken):
        unsubscribe.read_token(
            Settings(secret_key=None, database_url=f"sqlite:///{second}/carillon.db"), tokens[0]
        )
    kept = first / "carillon.db.secret"
    assert kept.stat().st_mode & 0o777 == 0o600
    assert len(kept.read_text().strip()) >= 32
    # The same file again (a restart): the same key, so old links still work.
    again = Settings(secret_key=None, database_url=f"sqlite:///{first}/carillon.db")
    assert unsubscribe.read_token(again, tokens[0]).delivery_id == 1
    # No file to keep it beside (PostgreSQL): no key at all, never a derived one.
    with pytest.raises(signing.MissingSecretKey, match="CARILLON_SECRET_KEY is not set"):
        unsubscribe.make_token(
            Settings(secret_key=None, database_url="postgresql+psycopg://x@h/db"), 1, "p"
        )
