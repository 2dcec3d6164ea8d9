"""Posting a signed JSON body to an endpoint (Standard Webhooks).

Each delivery is one `POST` with `Content-Type: application/json` and the three Standard
Webhooks headers: `webhook-id` (`msg_<delivery id>`, the same on every retry, so the receiver
can drop a repeat), `webhook-timestamp` (this attempt's Unix time, from the wall clock: the
receiver compares it with its own) and `webhook-signature`. The answer follows the
specification's etiquette: a 2xx is success; a 3xx is not followed (the URL should be
updated); 408, 425, 429 and 5xx, timeouts and connection errors are tried again (after
`Retry-After` when given); any other 4xx, 410 Gone included, is final.
"""

from __future__ import annotations

import ssl
import time

import httpcore
import httpx

from app.settings import Settings
from channels._retry import is_transient_status, retry_after_seconds
from channels.base import ContentRefused, Message, Outcome, SendResult
from channels.webhook import signing
from channels.webhook.addresses import Guard, Refused, Resolve, Unresolved, system_resolve
from channels.webhook.connection import pinned_pool
from channels.webhook.content import canonical_body, endpoint
from channels.webhook.settings import SECRETS, WebhookSettings

USER_AGENT = b"Carillon-Webhooks/1"
# Of a refusal's body, only this much is read and kept: the receiver's words, not its pages.
MAX_ANSWER_BYTES = 2048


class WebhookSender:
    name = "webhook"

    def __init__(
        self,
        settings: Settings,
        webhook: WebhookSettings,
        *,
        resolve: Resolve = system_resolve,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._keys = webhook.secrets()
        if not self._keys:
            raise ValueError(f"WebhookSender needs at least one secret in {SECRETS}")
        self._timeout = settings.provider_timeout_seconds
        guard = Guard(webhook.allowed_hosts(), resolve)
        self._pool = pinned_pool(guard, ssl_context or httpx.create_ssl_context())

    def close(self) -> None:
        self._pool.close()

    def send(self, message: Message) -> SendResult:
        try:
            target = endpoint(message.content.get("url"))
            body = canonical_body(message.content.get("body"))
        except ContentRefused as exc:
            return SendResult(Outcome.FAILED, error=str(exc))
        keys = self._keys.get(target.host)
        if not keys:
            return SendResult(
                Outcome.FAILED,
                error=f"no secret for {target.host}: add {target.host}=whsec_... to {SECRETS} "
                "(nothing is posted unsigned)",
            )
        webhook_id = f"msg_{message.delivery_id}"
        timestamp = int(time.time())
        headers = [
            (b"Host", target.netloc),
            (b"User-Agent", USER_AGENT),
            (b"Content-Type", b"application/json"),
            (b"webhook-id", webhook_id.encode("ascii")),
            (b"webhook-timestamp", str(timestamp).encode("ascii")),
            (
                b"webhook-signature",
                signing.signature_header(keys, webhook_id, timestamp, body).encode("ascii"),
            ),
        ]
        return self._post(target.url, headers, body, webhook_id)

    def _post(
        self, url: httpx.URL, headers: list[tuple[bytes, bytes]], body: bytes, webhook_id: str
    ) -> SendResult:
        timeout = dict.fromkeys(("connect", "read", "write", "pool"), self._timeout)
        request_url = httpcore.URL(
            scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
        )
        try:
            with self._pool.stream(
                "POST", request_url, headers=headers, content=body, extensions={"timeout": timeout}
            ) as response:
                answer = b"" if 200 <= response.status < 300 else _start_of(response)
        except Refused as exc:
            return SendResult(Outcome.FAILED, error=f"refused: {exc}")
        except Unresolved as exc:
            return SendResult(Outcome.FAILED, error=str(exc), transient=exc.transient)
        except httpcore.TimeoutException as exc:
            return _unreachable(url, f"timed out ({type(exc).__name__})")
        except (httpcore.NetworkError, httpcore.RemoteProtocolError) as exc:
            return _unreachable(url, f"{type(exc).__name__}: {exc}")
        except (httpcore.UnsupportedProtocol, httpcore.LocalProtocolError) as exc:
            return SendResult(Outcome.FAILED, error=f"the request cannot be made: {exc}")
        return _result(response.status, httpx.Headers(response.headers), answer, webhook_id)


def _start_of(response: httpcore.Response) -> bytes:
    taken = b""
    for chunk in response.iter_stream():
        taken += chunk
        if len(taken) >= MAX_ANSWER_BYTES:
            break
    return taken[:MAX_ANSWER_BYTES]


def _unreachable(url: httpx.URL, why: str) -> SendResult:
    host = url.raw_host.decode("ascii")
    return SendResult(Outcome.FAILED, error=f"{host} unreachable: {why}", transient=True)


def _result(status: int, headers: httpx.Headers, answer: bytes, webhook_id: str) -> SendResult:
    if 200 <= status < 300:
        return SendResult(Outcome.SENT, provider_message_id=webhook_id, status_code=status)
    if 300 <= status < 400:
        location = headers.get("Location", "")[:200]
        return SendResult(
            Outcome.FAILED,
            error=f"HTTP {status}: redirects are not followed; update the URL"
            + (f" (the endpoint points to {location})" if location else ""),
            status_code=status,
        )
    words = answer.decode("utf-8", "replace").strip()
    return SendResult(
        Outcome.FAILED,
        error=f"HTTP {status}: {words}" if words else f"HTTP {status}",
        status_code=status,
        transient=is_transient_status(status),
        retry_after_seconds=retry_after_seconds(headers.get("Retry-After")),
    )
