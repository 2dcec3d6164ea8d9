"""SSRF: non-public addresses are refused after resolution, and the connection goes to the
address that was checked, with the URL's host in the Host header and TLS's SNI."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

import pytest

from channels.base import ContentRefused, Outcome
from channels.webhook.adapter import WebhookSender
from channels.webhook.addresses import Guard, Refused, Unresolved, canonical_host, refusal
from channels.webhook.content import endpoint
from tests.channels.webhook.conftest import TLS_HOST, Certificates, message, resolving
from tests.channels.webhook.receiver import TEST_SECRET, WebhookReceiver

MakeSender = Callable[..., WebhookSender]


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.8.9.10", "a loopback address"),
        ("::1", "a loopback address"),
        ("10.1.2.3", "a private address"),
        ("172.16.0.1", "a private address"),
        ("192.168.1.1", "a private address"),
        ("fc00::1", "a private address"),
        ("fd12:3456::1", "a private address"),
        ("169.254.169.254", "a cloud metadata address"),
        ("fd00:ec2::254", "a cloud metadata address"),
        ("169.254.10.20", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("fe80::1%2", "a link-local address"),
        ("0.0.0.0", "the unspecified address"),
        ("::", "the unspecified address"),
        ("224.0.0.1", "a multicast address"),
        ("239.255.255.250", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("100.64.0.1", "not a public address"),  # carrier-grade NAT (RFC 6598)
        ("192.0.2.10", "a private address"),  # documentation (TEST-NET-1)
        ("240.0.0.1", "a private address"),  # reserved
        ("255.255.255.255", "a private address"),
        # IPv6 forms that reach an IPv4 address are judged by it.
        ("::ffff:127.0.0.1", "a loopback address"),
        ("::ffff:169.254.169.254", "a cloud metadata address"),
        ("2002:a00:1::1", "a private address"),  # 6to4 of 10.0.0.1
        ("64:ff9b::a9fe:a9fe", "a cloud metadata address"),  # NAT64 of 169.254.169.254
        ("64:ff9b::7f00:1", "a loopback address"),
    ],
)
def test_non_public_addresses_are_refused(address: str, reason: str) -> None:
    assert refusal(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    "address",
    ["93.184.215.14", "8.8.8.8", "2606:4700::1111", "64:ff9b::808:808", "2002:808:808::1"],
)
def test_public_addresses_pass(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


def test_a_loopback_url_is_refused_unless_its_host_is_allowed(
    receiver: WebhookReceiver, make_sender: MakeSender
) -> None:
    url = receiver.url()
    assert make_sender(allowed_hosts="127.0.0.1").send(message(url)).outcome is Outcome.SENT

    result = make_sender(allowed_hosts="").send(message(url))
    assert (result.outcome, result.transient) == (Outcome.FAILED, False)
    assert result.error == (
        "refused: 127.0.0.1 resolves to 127.0.0.1, a loopback address: webhooks are only sent "
        "to public addresses unless CARILLON_WEBHOOK_ALLOWED_HOSTS lists 127.0.0.1"
    )
    assert len(receiver.requests) == 1  # the refused one never connected


def test_a_name_resolving_to_loopback_is_refused_after_resolution(
    receiver: WebhookReceiver, make_sender: MakeSender
) -> None:
    """`localhost` is not 127.0.0.1 as written: allowing the address does not allow a name
    that resolves to it, since any DNS name can be made to resolve to it."""
    sender = make_sender(
        secrets=f"localhost={TEST_SECRET},127.0.0.1={TEST_SECRET}", allowed_hosts="127.0.0.1"
    )
    result = sender.send(message(receiver.url(host="localhost")))
    assert (result.outcome, result.transient) == (Outcome.FAILED, False)
    assert (result.error or "").startswith("refused: localhost resolves to ")
    assert "a loopback address" in (result.error or "")
    assert receiver.requests == []


def test_an_allowed_name_is_reached_at_one_of_its_addresses(
    receiver: WebhookReceiver, make_sender: MakeSender
) -> None:
    """`localhost` may resolve to ::1 first, where nothing listens: the next address is tried."""
    sender = make_sender(secrets=f"localhost={TEST_SECRET}", allowed_hosts="localhost")
    assert sender.send(message(receiver.url(host="localhost"))).outcome is Outcome.SENT
    [accepted] = receiver.accepted
    assert accepted.request.header("host") == f"localhost:{receiver.port}"


def test_every_address_of_an_answer_must_be_public(
    receiver: WebhookReceiver, make_sender: MakeSender
) -> None:
    """A public address beside a private one does not get the private one through: the
    connection could go to either."""
    calls: list[str] = []
    sender = make_sender(
        secrets=f"hooks.example.com={TEST_SECRET}",
        allowed_hosts="",
        resolve=resolving({"hooks.example.com": ["93.184.215.14", "10.0.0.7"]}, calls),
    )
    result = sender.send(message(f"http://hooks.example.com:{receiver.port}/hooks"))
    assert result.error == (
        "refused: hooks.example.com resolves to 10.0.0.7, a private address: webhooks are only "
        "sent to public addresses unless CARILLON_WEBHOOK_ALLOWED_HOSTS lists hooks.example.com"
    )
    assert calls == ["hooks.example.com"]
    assert receiver.requests == []


def test_the_connection_goes_to_the_checked_address_without_resolving_again(
    receiver: WebhookReceiver, make_sender: MakeSender
) -> None:
    """The name resolves only through the one answer that was checked: `hooks.example` exists
    in no DNS, so any second resolution would fail the request."""
    calls: list[str] = []
    sender = make_sender(
        secrets=f"hooks.example={TEST_SECRET}",
        allowed_hosts="hooks.example",
        resolve=resolving({"hooks.example": ["127.0.0.1"]}, calls),
    )
    result = sender.send(message(f"http://hooks.example:{receiver.port}/hooks"))
    assert result.outcome is Outcome.SENT, result.error
    assert calls == ["hooks.example"]
    [accepted] = receiver.accepted
    assert accepted.request.header("host") == f"hooks.example:{receiver.port}"


def test_tls_is_verified_and_sni_sent_for_the_url_host_not_the_address(
    tls_receiver: WebhookReceiver, certificates: Certificates, make_sender: MakeSender
) -> None:
    calls: list[str] = []
    sender = make_sender(
        secrets=f"{TLS_HOST}={TEST_SECRET},other.example={TEST_SECRET}",
        allowed_hosts=f"{TLS_HOST},other.example",
        resolve=resolving({TLS_HOST: ["127.0.0.1"], "other.example": ["127.0.0.1"]}, calls),
        ssl_context=certificates.client,
    )
    result = sender.send(message(tls_receiver.url(host=TLS_HOST)))
    assert result.outcome is Outcome.SENT, result.error
    assert tls_receiver.server_names == [TLS_HOST]
    [accepted] = tls_receiver.accepted
    assert accepted.request.header("host") == f"{TLS_HOST}:{tls_receiver.port}"

    # Same address, another name: the certificate (for hooks.example) does not match it.
    refused = sender.send(message(tls_receiver.url(host="other.example")))
    assert (refused.outcome, refused.transient) == (Outcome.FAILED, True)
    assert "CERTIFICATE_VERIFY_FAILED" in (refused.error or "")
    assert tls_receiver.server_names == [TLS_HOST, "other.example"]
    assert len(tls_receiver.accepted) == 1
    assert calls == [TLS_HOST, "other.example"]


def test_a_name_that_does_not_exist_is_final_a_resolver_failure_is_retried() -> None:
    guard = Guard(frozenset(), resolving({}, []))
    with pytest.raises(Unresolved) as missing:
        guard.addresses("nowhere.example", 443)
    assert missing.value.transient is False

    def failing(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    with pytest.raises(Unresolved) as again:
        Guard(frozenset(), failing).addresses("hooks.example.com", 443)
    assert again.value.transient is True
    assert str(again.value) == (
        "hooks.example.com could not be resolved: Temporary failure in name resolution"
    )


def test_an_allowed_host_is_matched_as_written() -> None:
    guard = Guard({"crm.internal", "10.0.0.7"}, resolving({"crm.internal": ["10.0.0.7"]}, []))
    assert guard.addresses("crm.internal", 443) == ["10.0.0.7"]
    assert guard.addresses("10.0.0.7", 443) == ["10.0.0.7"]
    with pytest.raises(Refused):
        Guard({"10.0.0.7"}, resolving({"crm.internal": ["10.0.0.7"]}, [])).addresses(
            "crm.internal", 443
        )


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("file:///etc/passwd", "is not an http or https URL"),
        ("gopher://127.0.0.1:6379/_INFO", "is not an http or https URL"),
        ("javascript:alert(1)", "is not an http or https URL"),
        ("//hooks.example.com/x", "is not an http or https URL"),
        ("http:///hooks", "has no valid host"),
        ("http://hooks example.com/", "has no valid host"),
        ("http://user:secret@hooks.example.com/", "carries a user name or password"),
        ("http://hooks.example.com/\x00", "cannot be read"),
        ("https://hooks.example.com/" + "a" * 2048, "is longer than 2048 characters"),
    ],
)
def test_only_http_and_https_urls_with_a_host(url: str, error: str) -> None:
    with pytest.raises(ContentRefused, match=error):
        endpoint(url)


@pytest.mark.parametrize(
    ("written", "in_url", "canonical"),
    [
        ("Hooks.Example.COM", "Hooks.Example.COM", "hooks.example.com"),
        ("bücher.example", "bücher.example", "xn--bcher-kva.example"),
        ("[::1]", "[::1]", "::1"),
        ("0:0:0:0:0:0:0:1", "[0:0:0:0:0:0:0:1]", "::1"),
        (" 127.0.0.1 ", "127.0.0.1", "127.0.0.1"),
    ],
)
def test_hosts_are_compared_in_one_form(written: str, in_url: str, canonical: str) -> None:
    """Settings and URLs meet in one form, so a secret or an allowance written either way
    applies."""
    assert canonical_host(written) == canonical
    assert endpoint(f"https://{in_url}/").host == canonical
