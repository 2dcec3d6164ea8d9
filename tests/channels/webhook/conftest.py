"""Webhook channel tests: the adapter against a local Standard Webhooks receiver over real
sockets, and journeys sending through the real pipeline.

The adapter tests of tests/channels need no database; these also run journeys end to end, so
the suite's database fixtures are taken back here.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from dramatiq.brokers.stub import StubBroker

from app.delivery import service
from app.settings import Settings, get_settings
from app.tasks import broker
from channels.base import Message, Recipient
from channels.webhook.adapter import WebhookSender
from channels.webhook.addresses import Resolve, system_resolve
from channels.webhook.content import finish
from channels.webhook.settings import WebhookSettings
from tests.channels.webhook.receiver import TEST_SECRET, WebhookReceiver
from tests.helpers import Pipeline
from tests.helpers import clean_state as clean_state  # the database fixtures
from tests.helpers import schema as schema

TLS_HOST = "hooks.example"


@pytest.fixture(scope="session")
def _receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as server:
        yield server


@pytest.fixture
def receiver(_receiver: WebhookReceiver) -> WebhookReceiver:
    _receiver.reset()
    return _receiver


@pytest.fixture
def make_sender() -> Iterator[Callable[..., WebhookSender]]:
    """A sender as the registry builds one, with these settings; closed after the test."""
    made: list[WebhookSender] = []

    def build(
        secrets: str = f"127.0.0.1={TEST_SECRET}",
        allowed_hosts: str = "127.0.0.1",
        timeout: float = 5.0,
        resolve: Resolve = system_resolve,
        ssl_context: ssl.SSLContext | None = None,
    ) -> WebhookSender:
        webhook = WebhookSettings(webhook_secrets=secrets, webhook_allowed_hosts=allowed_hosts)
        settings = Settings(provider_timeout_seconds=timeout)
        sender = WebhookSender(settings, webhook, resolve=resolve, ssl_context=ssl_context)
        made.append(sender)
        return sender

    yield build
    for sender in made:
        sender.close()


@dataclass(frozen=True)
class Certificates:
    """A test certificate authority and a server certificate it signed for `TLS_HOST`."""

    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    directory = tmp_path_factory.mktemp("tls")
    ca_key, server_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    now = datetime.now(UTC)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Carillon test CA")])
    ca = (
        _builder(ca_name, ca_name, ca_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, TLS_HOST)])
    server = (
        _builder(server_name, ca_name, server_key.public_key(), now)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(TLS_HOST)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    (directory / "server.pem").write_bytes(server.public_bytes(pem))
    (directory / "server.key").write_bytes(
        server_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    serving = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    serving.load_cert_chain(directory / "server.pem", directory / "server.key")
    return Certificates(serving, ssl.create_default_context(cafile=str(directory / "ca.pem")))


def _builder(
    subject: x509.Name, issuer: x509.Name, key: Any, now: datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key), critical=False)
    )


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


@pytest.fixture
def tls_receiver(certificates: Certificates) -> Iterator[WebhookReceiver]:
    with WebhookReceiver(tls=certificates.server) as server:
        yield server


def resolving(table: dict[str, list[str]], calls: list[str]) -> Resolve:
    """A resolver answering from `table` (a name it lacks does not exist; an IP address is
    itself, as getaddrinfo answers), noting each call."""

    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        if host not in table:
            with contextlib.suppress(ValueError):
                return [str(ipaddress.ip_address(host))]
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]

    return resolve


def configure(env: pytest.MonkeyPatch, **values: str) -> None:
    """`secrets=…` sets CARILLON_WEBHOOK_SECRETS, and so on; the channels are built again."""
    for name, value in values.items():
        env.setenv(f"CARILLON_WEBHOOK_{name.upper()}", value)
    get_settings.cache_clear()
    service.channels.cache_clear()


def drain(pipeline: Pipeline) -> None:
    """`Pipeline.drain`, then the webhook queue, which the suite's list of queues predates."""
    pipeline.drain()
    wait: dict[str, Any] = (
        {"fail_fast": True} if isinstance(broker, StubBroker) else {"timeout": 60_000}
    )
    broker.join("webhook", **wait)
    pipeline.worker.join()


def write_journey(directory: Path, text: str) -> Path:
    path = directory / "webhook.yaml"
    path.write_text(text, encoding="utf-8")
    return path


BODY = '{"type": "order.completed", "data": {"order_id": "A-17", "total": 42.5, "name": "Zoé"}}'


def message(url: str, body: str = BODY, delivery_id: str = "17") -> Message:
    return Message(
        delivery_id=delivery_id,
        channel="webhook",
        recipient=Recipient(profile_id="p1", email="ada@example.com"),
        content=finish({"url": url, "body": body}),
        journey_id="orders",
    )
