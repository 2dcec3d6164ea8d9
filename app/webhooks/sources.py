"""Which delivery-history sources are feedback rather than Carillon's own policy or retries."""

from __future__ import annotations

from app.webhooks.unsubscribe_page import SOURCE as UNSUBSCRIBE
from channels import registry


def provider_sources() -> tuple[str, ...]:
    """The sources provider webhooks write (each channel names its own)."""
    return tuple(source for spec in registry.specs().values() for source in spec.feedback_sources)


def feedback_sources() -> tuple[str, ...]:
    return (*provider_sources(), UNSUBSCRIBE)
