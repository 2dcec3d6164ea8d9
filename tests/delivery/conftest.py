"""Send-time policy tests: journeys written for each test, people and events stored and routed by
the real code, messages delivered by `service.deliver` (the worker's own job body) or by the
worker itself where the hand-over matters. Settings come through the environment."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.delivery import models
from app.settings import get_settings

EMAIL = '{channel: email, subject: Bonjour, html: "<p>Bonjour</p>", text: Bonjour}'
SMS = "{channel: sms, text: Bonjour}"


def journey_yaml(journey_id: str, event: str, send: str = EMAIL, policy: str = "") -> str:
    """A one-message journey; `policy` is YAML lines such as "priority: 5\\n"."""
    return (
        f"id: {journey_id}\nname: {journey_id}\ntrigger:\n  event: {event}\n"
        f"re_entry: always\n{policy}steps:\n  - send: {send}\n"
    )


SENT_OR_DRY = (models.SENT, models.DRY_RUN)


def refusal_at_start(env: pytest.MonkeyPatch, variable: str, value: str) -> str:
    """What Carillon says when it refuses to start with `variable=value`."""
    env.setenv(variable, value)
    get_settings.cache_clear()
    with pytest.raises(ValidationError) as raised:
        get_settings()
    said = str(raised.value)
    assert variable in said
    return said
