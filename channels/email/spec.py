"""E-mail through SendGrid: what the rest of Carillon knows about this channel."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from fastapi import APIRouter

from app.settings import Settings
from channels.base import Channel, ChannelSpec, Consent
from channels.email import content, feedback, webhooks
from channels.email.adapter import SendGridEmail
from channels.email.settings import SendGridSettings
from channels.settings import read

STATES = frozenset({"subscribed", "unsubscribed", "bounced", "complained"})


def _refusal(traits: Mapping[str, Any]) -> str | None:
    """Allowed unless the person unsubscribed, bounced or complained (CAN-SPAM opt-out)."""
    state = traits.get("email_consent")
    if isinstance(state, str) and state in STATES and state != "subscribed":
        return f"email {state}"
    return None


# What a transactional e-mail still may not outlive: an address that bounced, or a person who
# reported Carillon's mail as spam. An `unsubscribed` person still gets their receipt.
_NEVER = frozenset({"bounced", "complained"})


def _transactional_refusal(traits: Mapping[str, Any]) -> str | None:
    """A receipt or a password reset is not marketing (CAN-SPAM's transactional or relationship
    messages; GDPR art. 6(1)(b), the contract): the unsubscribe link does not stop it, a hard
    bounce or a spam complaint does."""
    state = traits.get("email_consent")
    if isinstance(state, str) and state in _NEVER:
        return f"email {state}"
    return None


def _credentials(settings: Settings) -> bool:
    return bool(read(SendGridSettings).sendgrid_api_key)


def _build(settings: Settings) -> Channel:
    return SendGridEmail(settings, read(SendGridSettings))


def _account(settings: Settings) -> str | None:
    key = read(SendGridSettings).sendgrid_api_key
    return f"sha256:{hashlib.sha256(key.encode()).hexdigest()[:16]}" if key else None


def _routers() -> tuple[APIRouter, ...]:
    return (webhooks.router,)


SPEC = ChannelSpec(
    name="email",
    provider="SendGrid",
    description="An e-mail through SendGrid.",
    address="email",
    required_content=frozenset({"subject", "html", "text"}),
    generated_content=frozenset({"text"}),
    consent=Consent(
        "email", "email_consent", STATES, _refusal, "unsubscribed", _transactional_refusal
    ),
    unsubscribe_link=True,
    credentials=_credentials,
    build=_build,
    rate_limit_account=_account,
    finish=content.finish,
    content_schema={
        "subject": {
            "description": "The e-mail's subject line. A Jinja2 template, e.g. "
            "\"{{ profile.traits.first_name | default('Bonjour') }}, votre panier vous attend\"."
        },
        "html": {"description": "The e-mail's HTML body. A Jinja2 template; values are escaped."},
        "text": {"description": "The plain-text body. A Jinja2 template."},
    },
    feedback_kinds={"delivered": "delivered", "opened": "open", "clicked": "click"},
    feedback_sources=(feedback.SOURCE,),
    routers=_routers,
    settings=SendGridSettings,
    attribution_window=timedelta(days=5),
    position=10,
)
