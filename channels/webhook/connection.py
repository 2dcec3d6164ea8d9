"""Connections that go only where the address check allowed.

httpcore asks its network backend to connect to the URL's host; this backend resolves that
host once through the `Guard`, which refuses non-public answers, and connects to the checked
address itself. Everything above the socket is unchanged: the request keeps the URL's host in
its Host header, and TLS sends it as SNI and verifies the certificate against it. Connections
are pooled per URL origin (scheme, host, port), so a connection checked for one host name is
never reused for another.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable

import httpcore

from channels.webhook.addresses import Guard

# A kept-alive connection is reused this long at most: its address was checked when it opened.
KEEPALIVE_SECONDS = 30.0


class PinnedBackend(httpcore.NetworkBackend):
    def __init__(self, guard: Guard) -> None:
        self._guard = guard
        self._tcp = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        """Each checked address in turn, as a resolver's answer is meant to be tried; the
        last one's failure is the one reported."""
        *first, last = self._guard.addresses(host, port)
        for address in first:
            try:
                return self._tcp.connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError:
                continue
        return self._tcp.connect_tcp(last, port, timeout, local_address, socket_options)

    def sleep(self, seconds: float) -> None:
        self._tcp.sleep(seconds)


def pinned_pool(guard: Guard, ssl_context: ssl.SSLContext) -> httpcore.ConnectionPool:
    """No proxy from the environment (a proxy would resolve the name again, out of reach of
    the check), no redirects (httpcore follows none)."""
    return httpcore.ConnectionPool(
        ssl_context=ssl_context,
        network_backend=PinnedBackend(guard),
        keepalive_expiry=KEEPALIVE_SECONDS,
        max_connections=None,
    )
