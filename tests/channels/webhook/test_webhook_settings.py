"""The webhook settings and signatures: secrets per host, read strictly, never echoed; each
signature checked against the specification's reference library."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError
from standardwebhooks.webhooks import Webhook

from channels import registry
from channels.webhook import signing
from channels.webhook.settings import WebhookSettings, parse_hosts, parse_secrets
from tests.channels.webhook.receiver import OTHER_SECRET, TEST_SECRET

KEY = b"carillon-webhook-test-secret-32b"


def test_secrets_are_read_per_host_and_a_repeated_host_keeps_both() -> None:
    unpadded = OTHER_SECRET.rstrip("=")
    keys = parse_secrets(
        f" Hooks.Example.COM={TEST_SECRET} ,,[::1]={TEST_SECRET}, hooks.example.com={unpadded}"
    )
    assert keys == {"hooks.example.com": (KEY, b"a-rotated-secret-of-at-least-24"), "::1": (KEY,)}


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        (
            "hooks.example.com",
            "item 1 should be host=whsec_..., e.g. hooks.example.com=whsec_...",
        ),
        (f"={TEST_SECRET}", "item 1 should be host=whsec_..."),
        (f"a.example={TEST_SECRET},hooks.example.com=sk_live_abc", "item 2 (hooks.example.com): "),
        ("hooks.example.com=whsec_not*base64", "the text after whsec_ is not base64"),
        (
            "hooks.example.com=whsec_" + base64.b64encode(b"x" * 23).decode(),
            "must hold 24 to 64 bytes, this one holds 23",
        ),
        (
            "hooks.example.com=whsec_" + base64.b64encode(b"x" * 65).decode(),
            "this one holds 65",
        ),
        (f"bad host={TEST_SECRET}", "item 1: 'bad host' is not a host name"),
    ],
)
def test_a_bad_secret_is_refused_at_start_without_showing_it(value: str, complaint: str) -> None:
    with pytest.raises(ValidationError) as refused:
        WebhookSettings(webhook_secrets=value)
    [error] = refused.value.errors()
    assert error["loc"] == ("webhook_secrets",)
    assert error["msg"].startswith("Value error, CARILLON_WEBHOOK_SECRETS: ")
    assert complaint in error["msg"]
    shown = str(refused.value)
    for item in value.split(","):
        secret = item.partition("=")[2]
        assert not secret or secret not in shown


def test_allowed_hosts_are_names_or_addresses() -> None:
    assert parse_hosts("crm.internal, 10.0.0.7,[fd00::1]") == {
        "crm.internal",
        "10.0.0.7",
        "fd00::1",
    }
    with pytest.raises(ValidationError, match="CARILLON_WEBHOOK_ALLOWED_HOSTS: 'crm/internal'"):
        WebhookSettings(webhook_allowed_hosts="crm/internal")


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARILLON_WEBHOOK_SECRETS", f"hooks.example.com={TEST_SECRET}")
    monkeypatch.setenv("CARILLON_WEBHOOK_ALLOWED_HOSTS", "crm.internal")
    webhook = WebhookSettings()
    assert webhook.secrets() == {"hooks.example.com": (KEY,)}
    assert webhook.allowed_hosts() == {"crm.internal"}
    assert TEST_SECRET not in repr(webhook)
    assert registry.spec("webhook").settings is WebhookSettings


def test_the_signature_is_the_reference_one() -> None:
    body = '{"type":"order.completed","data":{"name":"Zoé"}}'.encode()
    timestamp = 1_674_087_231
    header = signing.signature_header([KEY], "msg_42", timestamp, body)
    reference = Webhook(TEST_SECRET).sign(
        "msg_42", datetime.fromtimestamp(timestamp, UTC), body.decode()
    )
    assert header == reference


def test_one_signature_per_secret_space_separated() -> None:
    header = signing.signature_header([KEY, KEY[::-1]], "msg_1", 1, b"{}")
    first, second = header.split(" ")
    assert first == signing.signature(KEY, "msg_1", 1, b"{}")
    assert second == signing.signature(KEY[::-1], "msg_1", 1, b"{}")
    assert first != second
