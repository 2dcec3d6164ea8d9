"""Journeys that send webhooks, through the real pipeline: events ingested and routed, the
delivery planned in the outbox, sent by the worker to the local receiver, retried through the
outbox with the same webhook-id, and every bad input refused with its reason."""

from __future__ import annotations

import os
import subprocess
import textwrap
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from app import clock
from app.clock import ManualClock
from app.db import session_scope
from app.delivery import models, state
from app.delivery.retry_state import retries_due
from app.delivery.service import channels
from app.journeys import catalog
from app.journeys.language.files import JourneyInvalid, parse_journey
from app.profiles import consent
from app.profiles.consent import suppression_reason
from app.settings import get_settings
from app.sweeper import sweep_abandoned
from channels.base import Message, Outcome, Recipient
from channels.dry_run import DryRun
from tests.channels.webhook.conftest import configure, drain, write_journey
from tests.channels.webhook.receiver import TEST_SECRET, WebhookReceiver
from tests.helpers import (
    Pipeline,
    by_journey,
    deliver,
    deliveries,
    ingest,
    person,
    route,
    track_now,
)
from tests.processes import CARILLON

BODY = """\
{"type": "order.completed",
 "timestamp": {{ event.timestamp | tojson }},
 "data": {"order_id": {{ event.properties.order_id | tojson }},
          "email": {{ profile.email | tojson }},
          "first_name": {{ profile.traits.first_name | default("") | tojson }}}}"""


def journey(url: str, body: str = BODY, journey_id: str = "crm-sync") -> str:
    """A one-webhook journey on `Order Completed`; the body a YAML block (line 11 on)."""
    indented = textwrap.indent(body, " " * 10)
    return (
        f"id: {journey_id}\nname: CRM sync\ntrigger:\n  event: Order Completed\n"
        f"re_entry: always\nsteps:\n  - send:\n      channel: webhook\n"
        f'      url: "{url}"\n      body: |\n{indented}\n'
    )


def order(user: str, order_id: str = "A-17") -> dict[str, object]:
    return {**track_now(user, "Order Completed"), "properties": {"order_id": order_id}}


@pytest.fixture
def webhooks(
    settings_env: pytest.MonkeyPatch, receiver: WebhookReceiver, tmp_path: Path
) -> WebhookReceiver:
    """The channel configured for the receiver on 127.0.0.1, and a journey posting to it."""
    configure(settings_env, secrets=f"127.0.0.1={TEST_SECRET}", allowed_hosts="127.0.0.1")
    write_journey(tmp_path, journey(receiver.url("/hooks/orders")))
    assert catalog.sync_directory(tmp_path) == []
    return receiver


def test_an_order_posts_a_signed_webhook_through_the_pipeline(
    webhooks: WebhookReceiver, pipeline: Pipeline
) -> None:
    ingest(person("ada", first_name='Ada "the" Countess'), order("ada"))
    drain(pipeline)

    delivery = by_journey("crm-sync")
    assert (delivery.status, delivery.status_code) == (models.SENT, 204)
    assert delivery.provider_message_id == f"msg_{delivery.id}"
    [accepted] = webhooks.accepted
    assert accepted.webhook_id == f"msg_{delivery.id}"
    payload = dict(accepted.payload)
    assert datetime.fromisoformat(payload.pop("timestamp")).tzinfo is not None
    # tojson kept the quotes in the name inside its string.
    assert payload == {
        "type": "order.completed",
        "data": {
            "order_id": "A-17",
            "email": "ada@example.com",
            "first_name": 'Ada "the" Countess',
        },
    }
    assert accepted.request.raw_body.decode() == delivery.content["body"]
    assert delivery.content["url"] == webhooks.url("/hooks/orders")


def test_a_transient_refusal_is_retried_through_the_outbox_with_the_same_webhook_id(
    webhooks: WebhookReceiver, manual_clock: ManualClock
) -> None:
    webhooks.fail_next(503, {"error": "maintenance"}, {"Retry-After": "60"})
    route(person("ada"), order("ada"))
    first = deliver(by_journey("crm-sync").id)
    assert (first.status, first.attempts, first.status_code) == (models.PENDING, 1, 503)
    assert first.next_attempt_at is not None
    assert first.next_attempt_at >= manual_clock.now() + timedelta(seconds=60)

    manual_clock.advance(timedelta(seconds=61))
    second = deliver(first.id)
    assert (second.status, second.attempts, second.status_code) == (models.SENT, 2, 204)
    ids = [request.header("webhook-id") for request in webhooks.requests]
    assert ids == [f"msg_{first.id}", f"msg_{first.id}"]
    assert len(webhooks.accepted) == 1


def test_a_send_whose_worker_died_is_resent_with_the_same_webhook_id(
    webhooks: WebhookReceiver, manual_clock: ManualClock
) -> None:
    """The endpoint took the first POST, but the worker died before writing the answer: the
    sweeper resends rather than leaving the row `unknown`, and the receiver sees the same
    webhook-id twice, its cue to drop the repeat."""
    route(person("ada"), order("ada"))
    planned = by_journey("crm-sync")
    with session_scope() as session:  # the dead worker's claim, then its call, unanswered
        assert state.claim(session, planned.id, retries_due(), clock.now())
    message = Message(str(planned.id), "webhook", Recipient("ada"), planned.content)
    assert channels()["webhook"].send(message).outcome is Outcome.SENT

    manual_clock.advance(timedelta(seconds=get_settings().sending_timeout_seconds + 1))
    assert sweep_abandoned(timedelta(seconds=get_settings().sending_timeout_seconds)) == (1, 0)
    resent = deliver(planned.id)
    assert (resent.status, resent.attempts) == (models.SENT, 2)
    assert [a.webhook_id for a in webhooks.accepted] == [f"msg_{planned.id}"] * 2


def test_a_client_error_fails_at_once(webhooks: WebhookReceiver) -> None:
    webhooks.fail_next(422, {"error": "unknown order"})
    route(person("ada"), order("ada"))
    failed = deliver(by_journey("crm-sync").id)
    assert (failed.status, failed.attempts, failed.status_code) == (models.FAILED, 1, 422)
    assert failed.error == 'HTTP 422: {"error": "unknown order"}'
    assert failed.next_attempt_at is None


def test_no_consent_is_asked_a_webhook_reaches_a_system_not_a_person(
    webhooks: WebhookReceiver,
) -> None:
    """Someone who refused every channel that reaches people still has their order synced."""
    refusals = {
        "email_consent": "unsubscribed",
        "sms_consent": "opted_out",
        "ads_consent": "denied",
    }
    assert suppression_reason("webhook", refusals) is None
    route(person("ada", **refusals), order("ada"))
    assert deliver(by_journey("crm-sync").id).status == models.SENT
    # Nor can a state be recorded: there is none to withdraw.
    with session_scope() as session, pytest.raises(ValueError, match="not a webhook consent"):
        consent.record(session, "anyone", "webhook", "denied", clock.now(), "test")


def test_the_receiver_on_loopback_is_refused_without_the_allowance(
    webhooks: WebhookReceiver, settings_env: pytest.MonkeyPatch
) -> None:
    configure(settings_env, allowed_hosts="")
    route(person("ada"), order("ada"))
    refused = deliver(by_journey("crm-sync").id)
    assert (refused.status, refused.attempts) == (models.FAILED, 1)
    assert (refused.error or "").startswith("refused: 127.0.0.1 resolves to 127.0.0.1, a loopback")
    assert webhooks.requests == []


def test_a_url_built_from_event_data_reaches_only_hosts_with_a_secret(
    webhooks: WebhookReceiver, tmp_path: Path
) -> None:
    write_journey(tmp_path, journey("{{ event.properties.callback }}", journey_id="callbacks"))
    assert catalog.sync_directory(tmp_path) == []
    event = order("ada")
    event["properties"] = {"order_id": "A-1", "callback": "http://attacker.example/steal"}
    route(person("ada"), event)
    failed = deliver(by_journey("callbacks").id)
    assert failed.status == models.FAILED
    assert (failed.error or "").startswith("no secret for attacker.example")
    assert webhooks.requests == []


@pytest.mark.parametrize(
    ("first_name", "reason"),
    [
        # Spliced in without | tojson: a quote ends the string and adds a key of its own.
        ('x", "email": "attacker@example.com', "the webhook body has the key 'email' twice"),
        ('x"', "the webhook body is not JSON"),
    ],
)
def test_a_body_that_renders_to_bad_json_fails_before_anything_is_posted(
    webhooks: WebhookReceiver, tmp_path: Path, first_name: str, reason: str
) -> None:
    spliced = (
        '{"first_name": "{{ profile.traits.first_name }}", "email": {{ profile.email | tojson }}}'
    )
    write_journey(tmp_path, journey(webhooks.url(), body=spliced))
    assert catalog.sync_directory(tmp_path) == []
    route(person("ada", first_name=first_name), order("ada"))
    failed = by_journey("crm-sync")
    assert failed.status == models.FAILED
    assert reason in (failed.error or "")
    assert "| tojson" in (failed.error or "")
    deliver(failed.id)
    assert webhooks.requests == []


def test_without_secrets_the_channel_runs_dry(
    settings_env: pytest.MonkeyPatch, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    configure(settings_env, secrets="", allowed_hosts="")
    assert isinstance(channels()["webhook"], DryRun)
    write_journey(tmp_path, journey(receiver.url()))
    assert catalog.sync_directory(tmp_path) == []
    route(person("ada"), order("ada"))
    assert deliver(by_journey("crm-sync").id).status == models.DRY_RUN
    assert receiver.requests == []
    assert [d.channel for d in deliveries()] == ["webhook"]


# --------------------------------------------------------------------------- bad journeys


def issues(text: str) -> list[tuple[int, int, str]]:
    with pytest.raises(JourneyInvalid) as info:
        parse_journey(text, "j.yaml")
    return [(i.line, i.column, i.message) for i in info.value.issues]


def test_a_send_without_its_body_is_reported_where_it_is_written() -> None:
    text = (
        "id: crm-sync\nname: CRM sync\ntrigger:\n  event: Order Completed\nsteps:\n"
        "  - send:\n      channel: webhook\n      url: https://hooks.example.com/orders\n"
    )
    assert issues(text) == [(6, 5, "send (webhook) is missing required key 'body'")]


def test_a_body_written_as_a_yaml_mapping_is_reported_at_its_place() -> None:
    text = (
        "id: crm-sync\nname: CRM sync\ntrigger:\n  event: Order Completed\nsteps:\n"
        "  - send:\n      channel: webhook\n      url: https://hooks.example.com/orders\n"
        "      body:\n        order_id: '{{ event.properties.order_id }}'\n"
    )
    assert issues(text) == [(10, 9, "body must be text, not a mapping")]


def test_a_body_template_error_points_inside_the_block() -> None:
    text = journey("https://hooks.example.com/orders", body='{"id": {{ event.properties.id | }}}')
    assert issues(text) == [(11, 11, "body: expected token 'name', got 'end of print statement'")]


def test_a_bad_setting_stops_the_process_with_one_line(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CARILLON_DATABASE_URL": f"sqlite:///{tmp_path}/bad.db",
        "CARILLON_WEBHOOK_SECRETS": "hooks.example.com=whsec_dG9vIHNob3J0",
    }
    done = subprocess.run(
        [CARILLON, "serve", "--port", "1"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "carillon: CARILLON_WEBHOOK_SECRETS: item 1 (hooks.example.com): a secret must hold "
        "24 to 64 bytes, this one holds 9"
    ]
    assert "dG9vIHNob3J0" not in done.stderr
