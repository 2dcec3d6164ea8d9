"""Paid social through a Meta Custom Audience: what the rest of Carillon knows about it."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from app.settings import Settings
from channels.base import Channel, ChannelSpec, Consent, SpendSource
from channels.meta_audience.adapter import MetaCustomAudience
from channels.meta_audience.insights import read_spend
from channels.meta_audience.settings import AD_SETS, MetaSettings
from channels.settings import read

STATES = frozenset({"allowed", "denied"})


def _refusal(traits: Mapping[str, Any]) -> str | None:
    """Allowed unless the person objected (GDPR objection to ads)."""
    return "ads denied" if traits.get("ads_consent") == "denied" else None


# Shared by every channel that reaches people through ads.
ADS = Consent("ads", "ads_consent", STATES, _refusal, "denied")


def _credentials(settings: Settings) -> bool:
    return bool(read(MetaSettings).meta_access_token)


def _build(settings: Settings) -> Channel:
    return MetaCustomAudience(settings, read(MetaSettings))


def _account(settings: Settings) -> str | None:
    token = read(MetaSettings).meta_access_token
    return f"sha256:{hashlib.sha256(token.encode()).hexdigest()[:16]}" if token else None


def _ad_sets() -> dict[str, tuple[str, ...]]:
    return read(MetaSettings).ad_sets()


def _undo(content: Mapping[str, Any]) -> dict[str, Any]:
    return {"audience_id": content.get("audience_id"), "operation": "remove"}


SPEC = ChannelSpec(
    name="meta_audience",
    provider="Meta Marketing API",
    description="Add the person to a Meta (Facebook/Instagram) Custom Audience.",
    address=None,
    required_content=frozenset({"audience_id"}),
    consent=ADS,
    credentials=_credentials,
    build=_build,
    rate_limit_account=_account,
    undo=_undo,
    content_schema={
        "audience_id": {
            "description": "The Meta Custom Audience to add the person to: its id in quotes, "
            'digits only (e.g. "23850000000000001"), or a template that renders one.',
            "pattern": r"^[0-9]+$|\{",
        }
    },
    # Adding someone already in an audience changes nothing at Meta: a repeat is harmless.
    resend_when_abandoned=True,
    cost_unit="person",
    # Paid social pays for the ads shown to the audience: with its ad sets configured, the
    # channel costs what Meta's insights report they spent.
    spend=SpendSource(key="audience_id", objects=_ad_sets, read=read_spend, setting=AD_SETS),
    settings=MetaSettings,
    attribution_window=timedelta(days=7),  # an ad is seen days after the person joins
    position=30,
)
