"""The Conversions API channel's settings, read from the environment (prefix CARILLON_).

The Meta account (`META_ACCESS_TOKEN`, the Graph URL and version) is the audiences' model,
extended here with what only this channel needs.
"""

from __future__ import annotations

import re

from pydantic import field_validator

from channels.meta_audience.settings import MetaSettings

PIXEL_ID = re.compile(r"[0-9]{1,32}")
# Events Manager shows codes such as TEST12345; nothing else is ever part of one.
TEST_EVENT_CODE = re.compile(r"[A-Za-z0-9_-]{1,64}")


class MetaCapiSettings(MetaSettings):
    # The pixel (dataset) a step's events go to when the step names none.
    meta_pixel_id: str | None = None
    # Events Manager's "Test events" code: every event is sent with it, so it shows there.
    # Only for trying a set-up: unset it in production.
    meta_capi_test_event_code: str | None = None

    @field_validator("meta_pixel_id", "meta_capi_test_event_code", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """`CARILLON_META_PIXEL_ID=` in an env file means "not set"."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("meta_pixel_id")
    @classmethod
    def _pixel_digits(cls, value: str | None) -> str | None:
        if value is not None and not PIXEL_ID.fullmatch(value.strip()):
            raise ValueError(
                f"{value!r} is not a Meta pixel id: digits only, as Events Manager shows it, "
                "e.g. 1234567890123456"
            )
        return value.strip() if value is not None else None

    @field_validator("meta_capi_test_event_code")
    @classmethod
    def _test_code_shape(cls, value: str | None) -> str | None:
        if value is not None and not TEST_EVENT_CODE.fullmatch(value.strip()):
            raise ValueError(
                f"{value!r} is not a test event code: letters, digits, - and _ (at most 64), "
                "as Events Manager's Test events tab shows it, e.g. TEST12345"
            )
        return value.strip() if value is not None else None
