"""A transactional send, from request to outbox row, in one transaction.

In order: an `Idempotency-Key` seen before answers what it answered then (or 422 when the
request differs); the content is resolved and compiled (422); the person is found (404, 410
when erased); their address and consent for the channel are checked with the channel's
transactional rule (409, with the reason: nothing is queued); the templates are rendered
(422); the outbox row is written and queued after commit. From there it is a delivery like any
other: the worker checks consent again at send time (people change their minds), applies the
rate limit, retries, records the provider's answer and its webhooks.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import unsubscribe
from app.db import after_commit
from app.delivery import outbox
from app.delivery.models import Delivery
from app.errors import BadInput, CarillonError, Conflict, Gone, NotFound, Unprocessable
from app.journeys.templates import TemplateRenderError, Versions, render_variant
from app.messages import content
from app.messages.request import SendRequest
from app.profiles import requests
from app.profiles.consent import unreachable
from app.profiles.models import USER_ID
from app.profiles.references import Reference
from channels import registry

log = logging.getLogger(__name__)

MAX_IDEMPOTENCY_KEY = 255


@dataclass(frozen=True)
class Accepted:
    """The answer: the same for a request repeated with its `Idempotency-Key`."""

    delivery_id: int
    profile_id: str
    channel: str
    replayed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "success": True,
            "deliveryId": self.delivery_id,
            "profileId": self.profile_id,
            "channel": self.channel,
        }


def idempotency(sender: str, key: str | None, raw: Any) -> tuple[str, str] | None:
    """(hashed key, request digest): the key scoped to the send key's name, so two senders'
    keys never meet, and the request as canonical JSON, so the same request in another key
    order or spacing is the same request."""
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not key.isprintable() or not key.isascii():
        raise BadInput(
            f"Idempotency-Key: 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters, "
            "e.g. a UUID or the order number"
        )
    scoped = hashlib.sha256(f"{sender}\x00{key}".encode()).hexdigest()
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return scoped, hashlib.sha256(canonical.encode()).hexdigest()


def _seen(session: Session, keyed: tuple[str, str]) -> Accepted | None:
    """The answer a key was given before, or None; 422 when it came with another request."""
    row = session.execute(
        select(Delivery.id, Delivery.profile_id, Delivery.channel, Delivery.request_digest).where(
            Delivery.idempotency_key == keyed[0]
        )
    ).first()
    if row is None:
        return None
    if row.request_digest != keyed[1]:
        raise Unprocessable(
            "Idempotency-Key: this key was used with another request; a new message needs a "
            "new key, a retry the same request"
        )
    return Accepted(row.id, row.profile_id, row.channel, replayed=True)


def _person(session: Session, request: SendRequest, cdp: bool) -> dict[str, Any]:
    """The person as the checks and templates see them (segments and computed traits only
    when `cdp`: a template reads `profile`); 404 or 410."""
    user_id, email, phone = request.who()
    kind, value = (
        (USER_ID, user_id)
        if user_id is not None
        else ("email", email)
        if email
        else ("phone", phone)
    )
    try:
        return requests.view_named(session, Reference(kind, str(value).strip()), cdp=cdp)
    except requests.UnknownPerson:
        raise NotFound(f"{_FIELD[kind]}: nobody is known as {value!r}") from None
    except requests.Erased as exc:
        raise Gone(str(exc)) from None


_FIELD = {USER_ID: "userId", "email": "email", "phone": "phone"}


def _resolve(session: Session, request: SendRequest) -> content.Resolved:
    if request.channel not in registry.names():
        raise BadInput(
            f"channel: unknown channel {request.channel!r} (one of: {', '.join(registry.names())})"
        )
    if request.message is not None:
        return content.named(session, request.channel, request.message, request.journey)
    return content.inline(request.channel, request.content or {})


def _reachable(channel: str, person: dict[str, Any]) -> None:
    """409 with the reason when the message could only be refused at send time."""
    reason = unreachable(channel, person, transactional=True)
    if reason is not None:
        raise Conflict(f"{channel}: {reason}; nothing was queued")


def compose(
    channel: str, versions: Versions, person: dict[str, Any], message: str, data: dict[str, Any]
) -> dict[str, Any]:
    """The message rendered for one person, in their locale, as a journey's `send` step
    renders it (`data` is what templates read as `event.properties`); raises
    TemplateRenderError when the templates cannot be made with these values."""
    _, variant = versions.pick(person["traits"].get("locale"))
    variables = {
        "event": {
            "type": "track",
            "event": message,
            "userId": person["user_id"],
            "properties": data,
        },
        "profile": person,
        # The delivery has no id yet: the adapter swaps the placeholder for the signed link.
        "unsubscribe_url": unsubscribe.PLACEHOLDER,
    }
    return render_variant(channel, variant, variables)


def send(
    session: Session, request: SendRequest, sender: str, keyed: tuple[str, str] | None
) -> Accepted:
    """Plan the message in the request's transaction; it is queued once that commits.

    A key is looked up only when the row cannot be written (its INSERT does nothing on the
    key's conflict) or the request is refused: a request repeated with its key gets its first
    answer even if the person has since withdrawn consent. Two requests racing with one key:
    on PostgreSQL the second one's INSERT waits for the first's commit, then answers as a
    replay of it."""
    try:
        answer = _plan(session, request, keyed)
    except (CarillonError, KeyUsed):
        if keyed is None or (seen := _seen(session, keyed)) is None:
            raise
        answer = seen
    return _logged(session, answer, sender)


class KeyUsed(Exception):
    """The `Idempotency-Key` has a row already: the request is answered from it."""


def _plan(session: Session, request: SendRequest, keyed: tuple[str, str] | None) -> Accepted:
    resolved = _resolve(session, request)
    person = _person(session, request, resolved.versions.reads("profile"))
    _reachable(request.channel, person)
    try:
        rendered = compose(
            request.channel, resolved.versions, person, request.message or "", request.data
        )
    except TemplateRenderError as exc:
        raise Unprocessable(f"the message cannot be made with this data: {exc}") from None
    delivery_id = outbox.plan_request(
        session, person["id"], resolved.source, request.channel, rendered, keyed
    )
    if delivery_id is None:
        raise KeyUsed
    return Accepted(delivery_id, person["id"], request.channel)


def _logged(session: Session, answer: Accepted, sender: str) -> Accepted:
    def line() -> None:
        log.info(
            "transactional send %s on %s for %s by send key %s%s",
            answer.delivery_id,
            answer.channel,
            answer.profile_id,
            sender,
            " (replayed)" if answer.replayed else "",
            extra={"delivery_id": answer.delivery_id, "profile_id": answer.profile_id},
        )

    after_commit(session, line)
    return answer
