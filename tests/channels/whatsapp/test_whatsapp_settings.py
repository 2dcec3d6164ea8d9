"""The WhatsApp channel's own settings: read at start by every process, a bad one refused in
one line naming the variable; the channel goes live only with a WhatsApp sender."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.settings import get_settings
from channels import registry
from channels.dry_run import DryRun
from channels.whatsapp.adapter import TwilioWhatsApp
from channels.whatsapp.settings import WhatsAppSettings
from tests.channels.whatsapp.twilio_whatsapp import TwilioWhatsAppServer
from tests.processes import CARILLON
from tests.providers.twilio import TEST_MESSAGING_SERVICE_SID


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("+14155238886", "whatsapp:+14155238886"),
        (" whatsapp:+14155238886 ", "whatsapp:+14155238886"),
        ("", None),
    ],
)
def test_the_sender_is_kept_as_a_whatsapp_address(given: str, kept: str | None) -> None:
    assert WhatsAppSettings(whatsapp_from=given).whatsapp_from == kept


@pytest.mark.parametrize(
    ("field", "value", "complaint"),
    [
        ("whatsapp_from", "0612345678", "CARILLON_WHATSAPP_FROM: '0612345678' is not a WhatsApp"),
        ("whatsapp_from", "sms:+14155238886", "is not a WhatsApp sender"),
        (
            "whatsapp_messaging_service_sid",
            "MG123",
            "CARILLON_WHATSAPP_MESSAGING_SERVICE_SID: 'MG123' is not a Messaging Service SID",
        ),
    ],
)
def test_a_bad_value_is_refused_with_the_variable_named(
    field: str, value: str, complaint: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        WhatsAppSettings(**{field: value})
    assert complaint in str(refused.value)


@pytest.mark.parametrize(
    ("sender", "live"),
    [
        ({}, False),
        ({"CARILLON_WHATSAPP_FROM": "+14155238886"}, True),
        ({"CARILLON_WHATSAPP_MESSAGING_SERVICE_SID": TEST_MESSAGING_SERVICE_SID}, True),
        ({"CARILLON_WHATSAPP_FROM": "+14155238886", "TWILIO_AUTH_TOKEN": None}, False),
    ],
)
def test_the_channel_is_live_only_with_the_account_and_a_whatsapp_sender(
    whatsapp_env: Callable[..., None],
    twilio: TwilioWhatsAppServer,
    sender: dict[str, str | None],
    live: bool,
) -> None:
    """An SMS number alone (TWILIO_FROM_NUMBER) does not make WhatsApp live."""
    whatsapp_env(
        **{
            "TWILIO_ACCOUNT_SID": twilio.account_sid,
            "TWILIO_AUTH_TOKEN": twilio.auth_token,
            "TWILIO_FROM_NUMBER": "+15005550006",
            "CARILLON_WHATSAPP_FROM": None,
            "CARILLON_WHATSAPP_MESSAGING_SERVICE_SID": None,
            **sender,
        }
    )
    built = registry.build_channels(get_settings())["whatsapp"]
    assert isinstance(built, TwilioWhatsApp if live else DryRun)
    account = registry.spec("whatsapp").rate_limit_account(get_settings())
    assert account == (twilio.account_sid if live else None)


def test_a_process_started_with_a_bad_sender_says_so_in_one_line(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CARILLON_DATABASE_URL": f"sqlite:///{tmp_path}/carillon.db",
        "CARILLON_WHATSAPP_FROM": "06 12 34 56 78",
    }
    env.pop("CARILLON_REDIS_URL", None)
    done = subprocess.run(
        [CARILLON, "serve", "--port", "0"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "carillon: CARILLON_WHATSAPP_FROM: '06 12 34 56 78' is not a WhatsApp sender; write its "
        "number in E.164, e.g. +14155238886 (the whatsapp: prefix is optional)"
    ]
