"""A local Standard Webhooks receiver: the endpoint a journey's webhook is posted to.

Every POST is checked the way a real receiver checks it, with the specification's own reference
library (`standardwebhooks`, written apart from Carillon's signing code): the three
`webhook-*` headers, a timestamp within five minutes of now, and a `v1` signature made with the
endpoint's secret over `{id}.{timestamp}.{body}`. A verified delivery is answered `204` and
kept in `accepted`; anything else is answered `401` with the library's words, kept in
`rejected`. `fail_next` (from `ProviderServer`) queues the endpoint's refusals and outages.

With a server-side TLS context it speaks HTTPS and records the name each client asked for in
its TLS handshake (SNI).
"""

from __future__ import annotations

import base64
import ssl
from dataclasses import dataclass
from typing import Any, Self

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.providers.server import ProviderServer, RecordedRequest, Reply

TEST_SECRET = "whsec_" + base64.b64encode(b"carillon-webhook-test-secret-32b").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"a-rotated-secret-of-at-least-24").decode()


@dataclass(frozen=True)
class Accepted:
    webhook_id: str
    timestamp: int
    payload: Any
    request: RecordedRequest


class WebhookReceiver(ProviderServer):
    def __init__(self, secret: str = TEST_SECRET, tls: ssl.SSLContext | None = None) -> None:
        super().__init__()
        self.secret = secret
        self._verifier = Webhook(secret)
        self._tls = tls
        self.accepted: list[Accepted] = []
        self.rejected: list[str] = []
        self.server_names: list[str | None] = []

    def start(self) -> Self:
        super().start()
        if self._tls is not None and self._httpd is not None:
            self._tls.sni_callback = self._server_name
            # Connections accepted from now on are TLS; none was made before `start` returned.
            self._httpd.socket = self._tls.wrap_socket(self._httpd.socket, server_side=True)
        return self

    def url(self, path: str = "/hooks", host: str = "127.0.0.1") -> str:
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    def reset(self) -> None:
        super().reset()
        with self._condition:
            self.accepted.clear()
            self.rejected.clear()
            self.server_names.clear()

    def verify(self, request: RecordedRequest) -> Any:
        """The payload, once the reference library verified the request; raises otherwise."""
        return self._verifier.verify(request.raw_body, request.headers)

    def respond(self, request: RecordedRequest) -> Reply:
        if request.method != "POST":
            return Reply.json(405, {"error": "webhooks are POSTed"})
        if (request.header("content-type") or "").split(";")[0].strip() != "application/json":
            return Reply.json(415, {"error": "expected application/json"})
        try:
            payload = self.verify(request)
        except WebhookVerificationError as exc:
            with self._condition:
                self.rejected.append(str(exc))
            return Reply.json(401, {"error": str(exc)})
        accepted = Accepted(
            str(request.header("webhook-id")),
            int(request.header("webhook-timestamp") or 0),
            payload,
            request,
        )
        with self._condition:
            self.accepted.append(accepted)
        return Reply(204)

    def _server_name(self, sock: Any, name: str | None, context: ssl.SSLContext) -> None:
        with self._condition:
            self.server_names.append(name)
