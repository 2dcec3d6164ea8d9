"""Which addresses a webhook may reach (SSRF).

A journey names the URL, and templates may build it from event data, so a webhook could be
pointed at what only Carillon's own network can reach: the loopback interface, a private
network, a cloud's metadata service. Such addresses are refused unless
CARILLON_WEBHOOK_ALLOWED_HOSTS names the URL's host as written.

The check is made on the addresses the host name resolves to, not on the name, and the
connection goes to one of those checked addresses: the name is resolved once per connection
(`Guard.addresses`), so a DNS answer that changes between the check and the connection (DNS
rebinding) cannot move the request. Every address of the answer must pass, since the
connection may go to any of them.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Collection
from typing import Any

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolve = Callable[[str, int], list[str]]

# AWS, GCP and Azure's instance metadata over IPv4 (link-local anyway) and AWS's over IPv6
# (inside fc00::/7 anyway): named apart so the refusal says what was at stake.
METADATA = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
# RFC 6052's well-known NAT64 prefix: the IPv4 address in its last 32 bits is the one reached.
NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
# What getaddrinfo answers for a name that does not exist: asking again will not help.
_NO_SUCH_NAME = frozenset(
    code for name in ("EAI_NONAME", "EAI_NODATA") if (code := getattr(socket, name, None))
)


class Refused(Exception):
    """The host resolves to an address webhooks may not reach: no request is made."""


class Unresolved(Exception):
    """The host name could not be resolved; `transient` when asking again may succeed."""

    def __init__(self, message: str, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


def canonical_host(text: str) -> str:
    """A host as URLs and settings are compared: a name in lower case (its IDNA form, as URLs
    carry it), an IP address in its shortest form, IPv6 without brackets. ValueError when it
    is neither."""
    host = text.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        host = httpx.URL(scheme="http", host=host).raw_host.decode("ascii")
    except (httpx.InvalidURL, UnicodeError):
        raise ValueError(f"{text!r} is not a host name") from None
    if len(host) > 253 or not _HOST_NAME.fullmatch(host):
        raise ValueError(f"{text!r} is not a host name")
    return host


def refusal(address: IPAddress) -> str | None:
    """Why a webhook may not be sent to `address`, or None for a public one. An IPv6 address
    that carries an IPv4 one (mapped, 6to4, NAT64) is judged by the IPv4 address it reaches."""
    address = _reached(address)
    if address in METADATA:
        return "a cloud metadata address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private:
        return "a private address"
    if address.is_reserved or not address.is_global:
        return "not a public address"
    return None


def _reached(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv4Address):
        return address
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def system_resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for `host`, in its order, once each."""
    found: list[Any] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in found))


class Guard:
    """Resolves a host once and says where a connection may go."""

    def __init__(self, allowed_hosts: Collection[str], resolve: Resolve = system_resolve) -> None:
        self._allowed = frozenset(allowed_hosts)
        self._resolve = resolve

    def addresses(self, host: str, port: int) -> list[str]:
        """The addresses to connect to, in order; `Refused` when any of them is one webhooks
        may not reach and CARILLON_WEBHOOK_ALLOWED_HOSTS does not name `host`."""
        try:
            found = self._resolve(host, port)
        except socket.gaierror as exc:
            raise Unresolved(
                f"{host} could not be resolved: {exc.strerror or exc}",
                transient=exc.errno not in _NO_SUCH_NAME,
            ) from None
        if not found:
            raise Unresolved(f"{host} resolves to no address", transient=True)
        if canonical_host(host) in self._allowed:
            return found
        for text in found:
            if (reason := _refusal_of(text)) is not None:
                raise Refused(
                    f"{host} resolves to {text}, {reason}: webhooks are only sent to public "
                    f"addresses unless CARILLON_WEBHOOK_ALLOWED_HOSTS lists {host}"
                )
        return found


def _refusal_of(text: str) -> str | None:
    try:
        return refusal(ipaddress.ip_address(text))
    except ValueError:
        return "not an IP address"
