"""E-mail through SendGrid's v3 Mail Send API, with the official `sendgrid` library.

The delivery id travels in `custom_args`, so SendGrid's Event Webhook (delivered, open, click,
bounce) carries it back and the webhook handler finds the delivery without a lookup table; the
journey id is a category, so SendGrid's own statistics can be read per journey.

Every message is marketing, so each carries an unsubscribe link: the `List-Unsubscribe` and
`List-Unsubscribe-Post` headers (RFC 8058 one-click, which Gmail and Yahoo require of bulk
senders) and the same link in the body, where the template placed `{{ unsubscribe_url }}` or
else in a small footer. The link is signed from the message and the settings alone.
"""

from __future__ import annotations

import html
import http.client
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Category, CustomArg, Header, Mail

from app import unsubscribe
from app.settings import Settings
from channels._async_http import UNREACHABLE, Pool, unreachable_reason
from channels._retry import is_transient_status, retry_after_seconds, seconds_until_epoch
from channels.base import Message, Outcome, SendResult
from channels.email.settings import SendGridSettings

log = logging.getLogger(__name__)

DELIVERY_ID_ARG = "carillon_delivery_id"
# SendGrid refuses categories longer than this (Mail Send API reference, `categories`).
MAX_CATEGORY_LENGTH = 255
UNSUBSCRIBE_WORDS = "Se désabonner / Unsubscribe"
# Where a request shared by many recipients holds each one's unsubscribe link (text part,
# html part), replaced by SendGrid from the personalization's `substitutions`; neither is a
# part of the other, so the order SendGrid replaces them in does not matter.
LINK_TAGS = ("-carillon-unsubscribe-text-", "-carillon-unsubscribe-html-")


class SendGridEmail:
    name = "email"

    def __init__(self, settings: Settings, own: SendGridSettings) -> None:
        if not own.sendgrid_api_key:
            raise ValueError("SendGridEmail needs sendgrid_api_key")
        self._from_email = own.sendgrid_from_email
        self._settings = settings
        if not settings.public_url:
            log.warning(
                "CARILLON_PUBLIC_URL is not set: unsubscribe links point at %s",
                unsubscribe.EMBEDDED_URL,
            )
        self._client = SendGridAPIClient(
            api_key=own.sendgrid_api_key, host=own.sendgrid_base_url.rstrip("/")
        )
        # The library has no timeout argument of its own; its python_http_client passes this
        # attribute to every child client it builds and on to urllib, so a hung connection
        # costs one timeout, not a worker thread forever.
        self._client.client.timeout = settings.provider_timeout_seconds
        self._pool = Pool(settings.provider_timeout_seconds, settings.send_concurrency)

    def close(self) -> None:
        """Nothing to release: SendGrid's blocking client opens a connection per request."""

    def build_mail(self, message: Message) -> Mail:
        """The request body, separate from sending so it can be inspected and tested."""
        link = unsubscribe.link(self._settings, message.delivery_id, message.recipient.profile_id)
        mail = self._mail(message, link, html.escape(link))
        mail.custom_arg = CustomArg(DELIVERY_ID_ARG, str(message.delivery_id))
        mail.header = Header("List-Unsubscribe", f"<{link}>")
        mail.header = Header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
        return mail

    def _mail(self, message: Message, text_link: str, html_link: str) -> Mail:
        """What every recipient of this content gets, the unsubscribe link as given."""
        content = message.content
        mail = Mail(
            from_email=self._from_email,
            to_emails=(message.recipient.email or "").strip(),
            subject=content.get("subject"),
            plain_text_content=_with_link(content.get("text"), text_link, html_part=False),
            html_content=_with_link(content.get("html"), html_link, html_part=True),
        )
        if message.journey_id:
            mail.category = Category(str(message.journey_id)[:MAX_CATEGORY_LENGTH])
        return mail

    # SendGrid takes at most 1,000 personalizations per request (Mail Send API reference).
    batch_limit = 1000

    def batch_key(self, message: Message) -> str | None:
        """Messages whose request would be the same but for the recipient share a request:
        the body without its personalization, the unsubscribe link as substitution tags.
        None for a message refused before any call (it is answered alone)."""
        if _refusal(message) is not None:
            return None
        return json.dumps(self._shared(message), sort_keys=True)

    def _shared(self, message: Message) -> dict[str, Any]:
        body: dict[str, Any] = self._mail(message, *LINK_TAGS).get()
        del body["personalizations"]
        return body

    def personalization(self, message: Message) -> dict[str, Any]:
        """One recipient of a shared request: the address, the delivery id the webhooks
        match on, the one-click unsubscribe headers and the link, all this person's own."""
        link = unsubscribe.link(self._settings, message.delivery_id, message.recipient.profile_id)
        return {
            "to": [{"email": (message.recipient.email or "").strip()}],
            "custom_args": {DELIVERY_ID_ARG: str(message.delivery_id)},
            "headers": {
                "List-Unsubscribe": f"<{link}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
            "substitutions": dict(zip(LINK_TAGS, (link, html.escape(link)), strict=True)),
        }

    async def send_many_async(self, messages: Sequence[Message]) -> list[SendResult]:
        """One request, one personalization per message (same batch key); SendGrid answers
        for the whole request, so every message gets that answer (its X-Message-Id too)."""
        body = self._shared(messages[0])
        body["personalizations"] = [self.personalization(m) for m in messages]
        return [await self._post(body)] * len(messages)

    def send(self, message: Message) -> SendResult:
        refusal = _refusal(message)
        if refusal is not None:
            return SendResult(Outcome.FAILED, error=refusal, transient=False)
        try:
            response = self._client.send(self.build_mail(message))
        except HTTPError as exc:
            return _answer(int(exc.status_code), exc.headers, exc.body, exc.reason)
        except (OSError, http.client.HTTPException) as exc:
            # urllib raises URLError (an OSError) for refused connections and DNS failures,
            # TimeoutError for timeouts, RemoteDisconnected when the peer hangs up.
            return _unreachable(_describe(exc))
        return _answer(int(response.status_code), response.headers, None)

    async def send_async(self, message: Message) -> SendResult:
        """`send` on the workers' sending loop: the library's `Mail` builds the same body,
        posted over one pool of connections (opened on first use, on that loop) instead of a
        new connection per message."""
        refusal = _refusal(message)
        if refusal is not None:
            return SendResult(Outcome.FAILED, error=refusal, transient=False)
        return await self._post(self.build_mail(message).get())

    async def _post(self, body: dict[str, Any]) -> SendResult:
        try:
            async with self._pool.session().post(
                f"{self._client.host}/v3/mail/send",
                json=body,
                headers=self._client.client.request_headers,
            ) as answer:
                return _answer(answer.status, answer.headers, await answer.read())
        except UNREACHABLE as exc:
            return _unreachable(unreachable_reason(exc))
        except aiohttp.ClientError as exc:
            # A malformed base URL and the like: configuration, not a passing outage.
            return SendResult(Outcome.FAILED, error=f"SendGrid request failed: {exc}")

    async def aclose(self) -> None:
        await self._pool.close()


def _answer(
    status: int, headers: Mapping[str, str] | None, body: bytes | str | None, reason: Any = None
) -> SendResult:
    """What SendGrid's answer means, whichever client carried it."""
    if 200 <= status < 300:
        message_id = headers.get("X-Message-Id") if headers else None
        return SendResult(Outcome.SENT, provider_message_id=message_id, status_code=status)
    if status < 400:
        # A 1xx/3xx answer is not an acceptance; say so rather than claim a send.
        return SendResult(
            Outcome.FAILED,
            error=f"SendGrid answered HTTP {status} without accepting the message",
            status_code=status,
            transient=is_transient_status(status),
        )
    retry_after: float | None = None
    if headers is not None:
        retry_after = retry_after_seconds(headers.get("Retry-After"))
        if retry_after is None and status == 429:
            # SendGrid's documented rate-limit answer carries the reset time, not Retry-After.
            retry_after = seconds_until_epoch(headers.get("X-RateLimit-Reset"))
    return SendResult(
        Outcome.FAILED,
        error=f"SendGrid HTTP {status}: {sendgrid_error_text(body, reason)}",
        status_code=status,
        transient=is_transient_status(status),
        retry_after_seconds=retry_after,
    )


def _unreachable(why: str) -> SendResult:
    return SendResult(Outcome.FAILED, error=f"SendGrid unreachable: {why}", transient=True)


def _with_link(body: Any, shown: str, *, html_part: bool) -> str | None:
    """The body with the link (escaped for an html part) where the template asked for it,
    or in a footer."""
    if not body:
        return None
    text = str(body)
    if unsubscribe.PLACEHOLDER in text:
        return text.replace(unsubscribe.PLACEHOLDER, shown)
    if not html_part:
        return f"{text}\n\n{UNSUBSCRIBE_WORDS} : {shown}"
    footer = f'<p style="font-size:12px;color:#777"><a href="{shown}">{UNSUBSCRIBE_WORDS}</a></p>'
    end = text.lower().rfind("</body>")
    return f"{text[:end]}{footer}{text[end:]}" if end >= 0 else f"{text}{footer}"


def _refusal(message: Message) -> str | None:
    """Problems no provider call can fix: retrying them would only repeat the refusal."""
    if not (message.recipient.email or "").strip():
        return f"recipient {message.recipient.profile_id} has no e-mail address"
    if not str(message.content.get("subject") or "").strip():
        return "the e-mail has no subject"
    if not message.content.get("text") and not message.content.get("html"):
        return "the e-mail has neither a text nor an html body"
    return None


def sendgrid_error_text(body: bytes | str | None, reason: Any = None) -> str:
    """The provider's own words from `{"errors": [{"message", "field", "help"}]}`."""
    raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
    messages: list[str] = []
    if isinstance(parsed, dict) and isinstance(parsed.get("errors"), list):
        for item in parsed["errors"]:
            if not isinstance(item, dict):
                continue
            text = str(item.get("message") or "").strip()
            field = item.get("field")
            if field and field != "null":
                text = f"{field}: {text}" if text else str(field)
            if text:
                messages.append(text)
    if messages:
        return "; ".join(messages)
    if raw.strip():
        return raw.strip()[:500]
    return str(reason or "no error body")


def _describe(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    if reason is not None and reason is not exc:
        return f"{type(exc).__name__}: {reason}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
