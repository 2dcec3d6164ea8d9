"""The registry's choice of adapter, the content rules, and the dry run."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import pytest

from app.profiles.consent import suppression_reason
from app.profiles.models import CONTACT_TRAITS
from app.settings import Settings, get_settings
from channels import registry
from channels.base import Message, Outcome, Recipient
from channels.dry_run import DryRun
from channels.email.adapter import SendGridEmail
from channels.email.settings import SendGridSettings
from channels.meta_audience.adapter import MetaCustomAudience
from channels.meta_audience.settings import MetaSettings
from channels.registry import build_channels, required_content
from channels.settings import read, variables
from channels.sms.adapter import TwilioSMS
from channels.sms.settings import SmsSettings, TwilioAccount
from channels.whatsapp.settings import WhatsAppSettings
from tests.channels.third_party import push_channel
from tests.helpers import REPO
from tests.providers.meta import MetaGraphServer
from tests.providers.sendgrid import SendGridServer
from tests.providers.twilio import (
    TEST_ACCOUNT_SID,
    TEST_AUTH_TOKEN,
    TEST_FROM_NUMBER,
    TEST_MESSAGING_SERVICE_SID,
    TwilioServer,
)

ALL_CREDENTIALS = {
    "sendgrid_api_key": "SG.key",
    "twilio_account_sid": TEST_ACCOUNT_SID,
    "twilio_auth_token": TEST_AUTH_TOKEN,
    "twilio_from_number": TEST_FROM_NUMBER,
    "meta_access_token": "EAAB-token",
}


def test_channel_names() -> None:
    assert registry.names() == ("email", "sms", "whatsapp", "meta_audience", "meta_capi", "webhook")


def test_a_third_party_channel_is_found_through_its_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_settings: Callable[..., Settings]
) -> None:
    """Installed as its own distribution, the channel is listed, built (dry, without
    credentials), and its consent is asked, without a line of Carillon changed."""
    with push_channel(tmp_path, monkeypatch):
        assert registry.names()[-1] == "push"
        assert isinstance(build_channels(make_settings())["push"], DryRun)
        assert required_content("push") == {"title", "text"}
        assert suppression_reason("push", {"push_consent": "denied"}) == "push denied"
        with pytest.raises(ValueError, match="unknown channel 'fax'; one of: email, sms"):
            registry.spec("fax")
    assert "push" not in registry.names()


def test_channel_settings_take_credentials_by_field_name() -> None:
    assert SendGridSettings(**ALL_CREDENTIALS).sendgrid_api_key == "SG.key"
    assert SmsSettings(**ALL_CREDENTIALS).twilio_account_sid == TEST_ACCOUNT_SID
    assert MetaSettings(**ALL_CREDENTIALS).meta_access_token == "EAAB-token"


@pytest.mark.parametrize("spelling", ["TWILIO_AUTH_TOKEN", "CARILLON_TWILIO_AUTH_TOKEN"])
def test_sms_and_whatsapp_read_the_one_twilio_account(
    monkeypatch: pytest.MonkeyPatch, make_settings: Callable[..., Settings], spelling: str
) -> None:
    """Both channels extend one model: the account is declared, and read, once, under
    Twilio's own variable names (or the CARILLON_ spelling)."""
    make_settings(twilio_account_sid=TEST_ACCOUNT_SID)
    monkeypatch.setenv(spelling, TEST_AUTH_TOKEN)
    assert issubclass(SmsSettings, TwilioAccount) and issubclass(WhatsAppSettings, TwilioAccount)
    for model in (SmsSettings, WhatsAppSettings):
        assert (model().twilio_account_sid, model().twilio_auth_token) == (
            TEST_ACCOUNT_SID,
            TEST_AUTH_TOKEN,
        )
    assert variables(SmsSettings)["twilio_auth_token"] == "TWILIO_AUTH_TOKEN"
    assert variables(WhatsAppSettings)["twilio_auth_token"] == "TWILIO_AUTH_TOKEN"


def test_a_channel_reads_its_settings_again_with_carillons(
    monkeypatch: pytest.MonkeyPatch, make_settings: Callable[..., Settings]
) -> None:
    make_settings(sendgrid_from_email="first@example.com")
    assert read(SendGridSettings) is read(SendGridSettings)
    monkeypatch.setenv("CARILLON_SENDGRID_FROM_EMAIL", "second@example.com")
    assert read(SendGridSettings).sendgrid_from_email == "first@example.com"  # read once
    get_settings.cache_clear()
    assert read(SendGridSettings).sendgrid_from_email == "second@example.com"


def test_without_credentials_every_channel_runs_dry(
    make_settings: Callable[..., Settings],
) -> None:
    channels = build_channels(make_settings())
    assert list(channels) == list(registry.names())
    for name, channel in channels.items():
        assert isinstance(channel, DryRun)
        assert channel.name == name


def test_with_credentials_every_channel_is_real(make_settings: Callable[..., Settings]) -> None:
    channels = build_channels(make_settings(**ALL_CREDENTIALS))
    assert isinstance(channels["email"], SendGridEmail)
    assert isinstance(channels["sms"], TwilioSMS)
    assert isinstance(channels["meta_audience"], MetaCustomAudience)
    assert {name: channel.name for name, channel in channels.items()} == {
        name: name for name in registry.names()
    }


@pytest.mark.parametrize(
    ("twilio", "real"),
    [
        ({"twilio_account_sid": TEST_ACCOUNT_SID, "twilio_auth_token": TEST_AUTH_TOKEN}, False),
        ({"twilio_account_sid": TEST_ACCOUNT_SID, "twilio_from_number": TEST_FROM_NUMBER}, False),
        ({"twilio_auth_token": TEST_AUTH_TOKEN, "twilio_from_number": TEST_FROM_NUMBER}, False),
        (
            {
                "twilio_account_sid": TEST_ACCOUNT_SID,
                "twilio_auth_token": TEST_AUTH_TOKEN,
                "twilio_messaging_service_sid": TEST_MESSAGING_SERVICE_SID,
            },
            True,
        ),
        (
            {
                "twilio_account_sid": TEST_ACCOUNT_SID,
                "twilio_auth_token": TEST_AUTH_TOKEN,
                "twilio_from_number": TEST_FROM_NUMBER,
            },
            True,
        ),
    ],
)
def test_sms_needs_sid_token_and_a_sender(
    make_settings: Callable[..., Settings], twilio: dict[str, str], real: bool
) -> None:
    channel = build_channels(make_settings(**twilio))["sms"]
    assert isinstance(channel, TwilioSMS) is real
    assert isinstance(channel, DryRun) is not real


def test_each_channel_is_configured_independently(
    make_settings: Callable[..., Settings],
) -> None:
    channels = build_channels(make_settings(sendgrid_api_key="SG.key"))
    assert isinstance(channels["email"], SendGridEmail)
    assert isinstance(channels["sms"], DryRun)
    assert isinstance(channels["meta_audience"], DryRun)


def test_required_content() -> None:
    assert required_content("email") == {"subject", "html", "text"}
    assert required_content("sms") == {"text"}
    assert required_content("meta_audience") == {"audience_id"}
    with pytest.raises(ValueError, match="unknown channel 'fax'"):
        required_content("fax")


def test_dry_run_records_what_would_be_sent_and_sends_nothing(
    make_settings: Callable[..., Settings],
    sendgrid_server: SendGridServer,
    twilio_server: TwilioServer,
    meta_server: MetaGraphServer,
) -> None:
    # Base URLs point at live stand-ins, credentials are absent: nothing may reach them.
    settings = make_settings(
        sendgrid_base_url=sendgrid_server.base_url,
        twilio_base_url=twilio_server.base_url,
        meta_graph_url=meta_server.base_url,
    )
    recipient = Recipient(profile_id="p-9", email="eve@example.com", phone="+33611111111")
    contents = {
        "email": {"subject": "s", "html": "<p>h</p>", "text": "t"},
        "sms": {"text": "hello"},
        "meta_audience": {"audience_id": "23850000000000001"},
    }
    for name, channel in build_channels(settings).items():
        if name not in contents:  # the newer channels' dry runs: tests/channels/<name>/
            continue
        result = channel.send(
            Message("d-1", name, recipient, contents[name], journey_id="journey-1")
        )
        assert result.outcome is Outcome.DRY_RUN
        assert result.error is None and result.provider_message_id is None
        assert result.detail == {
            "channel": name,
            "delivery_id": "d-1",
            "journey_id": "journey-1",
            "recipient": {"profile_id": "p-9", "email": "eve@example.com", "phone": "+33611111111"},
            "content": contents[name],
        }
    assert sendgrid_server.requests == []
    assert twilio_server.requests == []
    assert meta_server.requests == []


def test_outside_channels_no_module_names_a_channel() -> None:
    """What Carillon knows about a channel, it asks the channel's spec: no `channel == "sms"`.
    A channel name that is also a contact identity (`email`) names the identity there."""
    contacts = set(CONTACT_TRAITS)
    offenders = []
    for path in sorted((REPO / "app").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Constant)
                and node.value in registry.names()
                and node.value not in contacts
            ):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value!r}")
    assert offenders == []
