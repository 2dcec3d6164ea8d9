"""A person's timezone: the `timezone` trait (IANA name), else CARILLON_DEFAULT_TIMEZONE.

Shared by `wait: {until: …}` and quiet hours, so both agree on what time it is for the person.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.settings import get_settings

log = logging.getLogger(__name__)


def timezone_of(profile_id: str, traits: Mapping[str, object]) -> ZoneInfo:
    name = traits.get("timezone")
    if isinstance(name, str) and name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            log.info("profile %s: unknown timezone %r, using the default", profile_id, name)
    return ZoneInfo(get_settings().default_timezone)
