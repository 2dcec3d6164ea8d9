"""Conversion events through Meta's Conversions API: what the rest of Carillon knows about
this channel."""

from __future__ import annotations

from datetime import timedelta

from app.settings import Settings
from channels.base import Channel, ChannelSpec
from channels.meta_audience.spec import ADS
from channels.meta_audience.spec import SPEC as AUDIENCES
from channels.meta_capi import content
from channels.meta_capi.adapter import MetaConversions
from channels.meta_capi.settings import MetaCapiSettings
from channels.settings import read


def _build(settings: Settings) -> Channel:
    return MetaConversions(settings, read(MetaCapiSettings))


def _template(description: str, pattern: str | None = None) -> dict[str, str]:
    """A content key's JSON Schema; a pattern also lets a template (`{…}`) through."""
    return {"description": description, **({"pattern": f"{pattern}|\\{{"} if pattern else {})}


SPEC = ChannelSpec(
    name="meta_capi",
    provider="Meta Conversions API",
    description="Report a conversion (Purchase, Lead, …) of the person to a Meta pixel, "
    "server side.",
    address=None,
    # Every key but event_name may be left out of a message variant: `finish` fills it in.
    # A step written inline must still give them all (the loader requires every content key
    # there), so the optional ones are listed as generated.
    required_content=frozenset({content.EVENT_NAME, *content.OPTIONAL}),
    generated_content=content.OPTIONAL,
    # The ads consent of the audiences (GDPR objection): a person who objected to ads is not
    # reported to Meta either.
    consent=ADS,
    credentials=AUDIENCES.credentials,  # the same META_ACCESS_TOKEN
    build=_build,
    rate_limit_account=AUDIENCES.rate_limit_account,
    finish=content.finish,
    # It reports a conversion to Meta; it does not bring one about.
    attribution_window=timedelta(0),
    content_schema={
        content.EVENT_NAME: _template(
            "A standard event (Purchase, Lead, CompleteRegistration, AddToCart, Subscribe, …) "
            f"or a custom one, at most {content.MAX_EVENT_NAME} characters."
        ),
        content.EVENT_ID: _template(
            "What Meta deduplicates on with the browser pixel's eventID, e.g. "
            '"{{ event.properties.order_id }}"; left out: the delivery\'s own id.'
        ),
        content.EVENT_TIME: _template(
            'When the conversion happened, e.g. "{{ event.timestamp }}" (ISO 8601) or Unix '
            "seconds; left out: when the step ran.",
        ),
        content.ACTION_SOURCE: _template(
            f"Where the conversion happened: {', '.join(content.ACTION_SOURCES)}; left out: "
            f"{content.DEFAULT_ACTION_SOURCE}.",
            f"^({'|'.join(content.ACTION_SOURCES)})$",
        ),
        content.PIXEL: _template(
            "The pixel (dataset) id, digits; left out: CARILLON_META_PIXEL_ID.", "^[0-9]+$"
        ),
        content.VALUE: _template(
            'The conversion\'s value, e.g. "{{ event.properties.total }}"; with currency. '
            "Required for Purchase."
        ),
        content.CURRENCY: _template(
            "ISO 4217 code of the value, e.g. EUR. Required for Purchase.", "^[A-Za-z]{3}$"
        ),
        content.SOURCE_URL: _template(
            "The page the conversion happened on (Meta asks it of website events), e.g. "
            '"{{ event.context.page.url }}".',
            "^https?://",
        ),
        content.USER_AGENT: _template(
            "The browser's user agent (Meta asks it of website events), e.g. "
            '"{{ event.context.userAgent }}".'
        ),
    },
    # Meta counts a repeated event_id once: a call that may or may not have arrived is resent.
    resend_when_abandoned=True,
    cost_unit="event",
    cost=0.0,  # Meta does not charge for Conversions API events
    settings=MetaCapiSettings,
    position=40,
)
