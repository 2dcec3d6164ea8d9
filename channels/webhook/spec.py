"""Signed webhooks (Standard Webhooks): what the rest of Carillon knows about this channel."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from app.settings import Settings
from channels.base import Channel, ChannelSpec, Consent
from channels.webhook import content
from channels.webhook.adapter import WebhookSender
from channels.webhook.settings import WebhookSettings


def _never_refused(traits: Mapping[str, Any]) -> str | None:
    """A webhook reaches the shop's own systems (a CRM, an ERP, a chat room), not a person, so
    no marketing-consent law applies to it and no per-person state is kept: whether a
    person's data may go to a given system is the journey's decision (its trigger and
    conditions), like any other processing the shop does."""
    return None


# No state can be recorded (`consent.record` refuses any), so nothing ever withdraws it.
NO_CONSENT = Consent("webhook", "webhook_consent", frozenset(), _never_refused, "")


def _credentials(settings: Settings) -> bool:
    return bool(WebhookSettings().secrets())


def _build(settings: Settings) -> Channel:
    return WebhookSender(settings, WebhookSettings())


def _account(settings: Settings) -> str | None:
    """One budget for every endpoint: the contract gives no per-endpoint account."""
    return "endpoints" if _credentials(settings) else None


SPEC = ChannelSpec(
    name="webhook",
    provider="Standard Webhooks",
    description="A signed JSON POST to an HTTP endpoint (Standard Webhooks).",
    address=None,
    required_content=frozenset({"url", "body"}),
    consent=NO_CONSENT,
    credentials=_credentials,
    build=_build,
    rate_limit_account=_account,
    finish=content.finish,
    describe=content.describe,
    content_schema={
        "url": {
            "description": "The http(s) URL to POST to; its host needs a secret in "
            "CARILLON_WEBHOOK_SECRETS. A Jinja2 template.",
            "pattern": r"^(https?://|\{)",
        },
        "body": {
            "description": "A Jinja2 template that renders a JSON object; put values from data "
            'through | tojson, e.g. {"type": "order.completed", "data": '
            "{{ event.properties | tojson }}}.",
        },
    },
    # The same webhook-id on a repeat: a Standard Webhooks receiver drops the duplicate.
    resend_when_abandoned=True,
    cost_unit="request",
    cost=0.0,  # a POST to the shop's own systems: no provider bills it
    # A receiver down for maintenance gets longer to come back than a provider's blip: as many
    # attempts as the Standard Webhooks reference schedule (Svix) makes.
    attempts=8,
    attribution_window=timedelta(0),  # a call to another system, not a message to the person
    settings=WebhookSettings,
    position=50,
)
