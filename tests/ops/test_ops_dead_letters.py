"""Dead letters and replay, and a delivery's story, through the API and the CLI.

The failure is real: Twilio's local stand-in refuses the first SMS the way Twilio does.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.cli import app as cli
from app.clock import ManualClock
from app.db import session_scope
from app.delivery import models
from app.journeys import catalog
from app.journeys.timers import fire_due
from app.ops import queues
from app.ops.story import POLICY_NOTE, WEBHOOKS_NOTE
from tests.helpers import REPO, Pipeline, bearer, ingest, newsletter_signup, only_delivery
from tests.providers.twilio import TwilioServer, twilio_error

# A refusal ops can fix (enable the country in Twilio's geo permissions) and then replay.
REFUSAL = (
    "Permission to send an SMS has not been enabled for the region indicated by the 'To' "
    "number: +33612345678."
)


@pytest.fixture
def failed_sms(twilio: TwilioServer, pipeline: Pipeline) -> int:
    """One welcome SMS that Twilio refused (HTTP 400, code 21408)."""
    catalog.sync_directory(REPO / "journeys")
    twilio.fail_next(400, twilio_error(400, 21408, REFUSAL))
    ingest(*newsletter_signup("ada"))
    pipeline.drain()
    delivery = only_delivery()
    assert delivery.status == models.FAILED
    return delivery.id


def test_a_refused_message_is_listed_as_a_dead_letter(
    client: TestClient, admin: str, failed_sms: int
) -> None:
    listed = client.get("/ops/dead-letters", headers=bearer())
    assert listed.status_code == 200
    [dead] = listed.json()
    assert dead["id"] == failed_sms
    assert (dead["channel"], dead["journey_id"], dead["status_code"]) == (
        "sms",
        "newsletter-welcome",
        400,
    )
    assert REFUSAL in dead["error"]


@pytest.mark.parametrize("limit", ["0", "501", "many"])
def test_dead_letters_limit_is_checked(client: TestClient, admin: str, limit: str) -> None:
    assert client.get(f"/ops/dead-letters?limit={limit}", headers=bearer()).status_code == 422


def test_replay_sends_it_again_once_however_often_it_is_clicked(
    client: TestClient, admin: str, failed_sms: int, twilio: TwilioServer, pipeline: Pipeline
) -> None:
    pipeline.worker.pause()  # two clicks land before any worker picks the job up
    first = client.post(f"/ops/dead-letters/{failed_sms}/replay", headers=bearer())
    assert first.status_code == 200
    assert first.json() == {"delivery_id": failed_sms, "replayed": True, "status": "pending"}
    # The second click finds the row pending again: it reports so and enqueues nothing.
    again = client.post(f"/ops/dead-letters/{failed_sms}/replay", headers=bearer())
    assert again.status_code == 200
    assert again.json() == {"delivery_id": failed_sms, "replayed": False, "status": "pending"}
    with session_scope() as session:
        sms = queues.snapshot(session).row("sms")
    assert sms.broker is not None and sms.broker.ready == 1  # one job for two clicks
    assert sms.backlog.waiting == 1
    pipeline.worker.resume()

    pipeline.drain()

    delivery = only_delivery()
    assert delivery.status == models.SENT
    assert delivery.provider_message_id and delivery.provider_message_id.startswith("SM")
    assert delivery.error is None
    assert delivery.attempts == 1  # a fresh budget since the replay
    assert len(twilio.requests) == 2  # the refused call and the replayed one: no third
    assert client.get("/ops/dead-letters", headers=bearer()).json() == []
    # Sent now: not a dead letter any more, so a late click is refused and changes nothing.
    late = client.post(f"/ops/dead-letters/{failed_sms}/replay", headers=bearer())
    assert late.status_code == 409
    assert "is sent, not a dead letter" in late.json()["detail"]
    pipeline.drain()
    assert len(twilio.requests) == 2


def test_replay_of_unknown_or_malformed_ids(client: TestClient, admin: str) -> None:
    missing = client.post("/ops/dead-letters/999999/replay", headers=bearer())
    assert missing.status_code == 404
    assert missing.json()["detail"] == "delivery 999999 does not exist"
    assert client.post("/ops/dead-letters/abc/replay", headers=bearer()).status_code == 422


def test_a_message_that_could_not_be_rendered_is_not_replayed(
    client: TestClient, admin: str, manual_clock: ManualClock
) -> None:
    # No cart_url: the reminder's template fails when the wait fires; there is nothing to send.
    catalog.sync_directory(REPO / "journeys")
    from app.events import routing

    for event_id in ingest(
        {"type": "track", "userId": "bo", "event": "Cart Abandoned", "properties": {"total": 50}}
    ):
        routing.process_one(event_id)
    manual_clock.advance(timedelta(hours=1))
    assert fire_due(10) == 1
    delivery = only_delivery()
    assert delivery.status == models.FAILED and delivery.content == {}
    refused = client.post(f"/ops/dead-letters/{delivery.id}/replay", headers=bearer())
    assert refused.status_code == 409
    assert "was never rendered" in refused.json()["detail"]
    assert only_delivery().status == models.FAILED


# ------------------------------------------------------------------------------ the story


def test_story_of_a_replayed_sms(
    client: TestClient, admin: str, failed_sms: int, pipeline: Pipeline
) -> None:
    client.post(f"/ops/dead-letters/{failed_sms}/replay", headers=bearer())
    pipeline.drain()
    sent = only_delivery()

    story = client.get(f"/ops/deliveries/{failed_sms}", headers=bearer())
    assert story.status_code == 200
    data = story.json()
    assert (data["status"], data["channel"], data["journey_id"]) == (
        "sent",
        "sms",
        "newsletter-welcome",
    )
    assert data["provider_message_id"] == sent.provider_message_id
    assert data["attempts"] == 1
    assert data["message_id"].startswith("carillon-")  # assigned at ingest
    whats = [step["what"] for step in data["steps"]]
    assert whats == [
        "event received: Newsletter Subscribed",
        "entered journey newsletter-welcome",
        "planned (step 0, channel sms)",
        "replayed by ops",
        "claimed for sending 1 time(s) since the replay",
        "sent",
    ]
    assert data["steps"][3]["detail"].startswith("was failed after 1 attempt(s): 21408: Permission")
    assert data["steps"][-1]["detail"] == f"provider id {sent.provider_message_id}"
    assert data["webhooks"] == []
    assert data["notes"] == [POLICY_NOTE, WEBHOOKS_NOTE]

    result = CliRunner().invoke(cli, ["deliveries", "show", str(failed_sms)])
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert f"delivery {failed_sms}: sms, sent" in text
    assert f"provider id {sent.provider_message_id}" in text
    assert "event received: Newsletter Subscribed" in text
    assert f"note: {WEBHOOKS_NOTE}" in text
    assert "text: Bienvenue Ada !" in text


def test_story_of_a_cart_reminder_tells_the_wait(admin: str, manual_clock: ManualClock) -> None:
    catalog.sync_directory(REPO / "journeys")
    from app.delivery import service
    from app.events import routing

    cart = {
        "type": "track",
        "userId": "cy",
        "event": "Cart Abandoned",
        "messageId": "cart-cy-1",
        "properties": {"total": 50, "cart_url": "https://shop.example/c/1"},
    }
    for event_id in ingest(cart):
        routing.process_one(event_id)
    manual_clock.advance(timedelta(hours=1))
    fire_due(10)
    service.deliver(only_delivery().id)

    result = CliRunner().invoke(cli, ["deliveries", "show", str(only_delivery().id), "--json"])
    assert result.exit_code == 0, result.output
    import json

    data = json.loads(result.stdout)
    assert data["message_id"] == "cart-cy-1"
    whats = [step["what"] for step in data["steps"]]
    assert whats == [
        "event received: Cart Abandoned",
        "entered journey cart-abandonment",
        "deferred by wait (step 0)",
        "planned (step 1, channel email)",
        "claimed for sending 1 time(s)",
        "dry run (nothing sent)",
    ]
    wait = data["steps"][2]
    assert wait["at"] == "2026-11-02T09:00:00+00:00"
    assert wait["detail"].startswith("due 2026-11-02T10:00:00+00:00, fired 2026-11-02T10:00")


def test_story_of_an_unknown_delivery(client: TestClient, admin: str) -> None:
    assert client.get("/ops/deliveries/424242", headers=bearer()).status_code == 404
    assert client.get("/ops/deliveries/x", headers=bearer()).status_code == 422
    result = CliRunner().invoke(cli, ["deliveries", "show", "424242"])
    assert result.exit_code == 1
    assert result.stderr == "delivery 424242 does not exist\n"
    bad = CliRunner().invoke(cli, ["deliveries", "show", "twelve"])
    assert bad.exit_code == 2
    missing = CliRunner().invoke(cli, ["deliveries", "show"])
    assert missing.exit_code == 2
