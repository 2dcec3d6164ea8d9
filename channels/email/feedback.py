"""SendGrid's Event Webhook: a JSON array of events, each echoing our `custom_args`.

Every event lands in its delivery's history under its `sg_event_id`, so a batch SendGrid posts
again (it retries for up to 72 hours on anything but a 2xx) is recorded once. Events that say
"never again" set e-mail consent as of the event's own time: a hard bounce, a spam report, an
unsubscribe. A batch whose shape is wrong is refused whole; an event for a delivery we do not
know (mail sent by other software on the same account) is skipped, since refusing it would
only make SendGrid retry it for three days.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from app.delivery import history
from app.delivery.models import Delivery
from app.profiles import consent
from channels.email.adapter import DELIVERY_ID_ARG

log = logging.getLogger(__name__)

SOURCE = "sendgrid"
EVENTS = frozenset(
    {
        "processed",
        "delivered",
        "open",
        "click",
        "bounce",
        "dropped",
        "deferred",
        "spamreport",
        "unsubscribe",
        "group_unsubscribe",
    }
)
_CONSENT = {
    "spamreport": "complained",
    "unsubscribe": "unsubscribed",
    "group_unsubscribe": "unsubscribed",
}
# Fields worth keeping in the history's detail, in this order, when the event has them.
_DETAIL_FIELDS = ("type", "status", "reason", "response", "url", "asm_group_id", "attempt")
MAX_DETAIL = 500


class Malformed(ValueError):
    pass


@dataclass(frozen=True)
class FeedbackEvent:
    event_id: str
    kind: str
    at: datetime
    delivery_id: int | None
    detail: str | None
    consent: str | None


@dataclass
class Tally:
    recorded: int = 0
    replayed: int = 0
    ignored: int = 0


def _consent_state(kind: str, item: dict[str, Any]) -> str | None:
    if kind == "bounce":
        # `type: blocked` is a soft refusal (the receiving server said not now), not a dead
        # address; payloads from before the `type` field only reported hard bounces.
        return "bounced" if item.get("type", "bounce") == "bounce" else None
    return _CONSENT.get(kind)


def _delivery_id(value: Any) -> int | None:
    text = str(value).strip() if isinstance(value, str | int) else ""
    return int(text) if text.isdigit() and len(text) <= 18 else None  # fits a BIGINT


def _detail(item: dict[str, Any]) -> str | None:
    parts = [f"{name} {item[name]}" for name in _DETAIL_FIELDS if item.get(name) not in (None, "")]
    return "; ".join(parts)[:MAX_DETAIL] or None


def _event(index: int, item: Any) -> FeedbackEvent:
    where = f"[{index}]"
    if not isinstance(item, dict):
        raise Malformed(f"{where}: expected an event object")
    kind, event_id, stamp = item.get("event"), item.get("sg_event_id"), item.get("timestamp")
    if not isinstance(kind, str) or not kind:
        raise Malformed(f"{where}.event: expected the event name")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= 255:
        raise Malformed(f"{where}.sg_event_id: expected SendGrid's event id")
    if isinstance(stamp, bool) or not isinstance(stamp, int | float):
        raise Malformed(f"{where}.timestamp: expected Unix seconds")
    try:
        at = datetime.fromtimestamp(stamp, UTC)
    except (OverflowError, OSError, ValueError):
        raise Malformed(f"{where}.timestamp: {stamp} is not a time") from None
    return FeedbackEvent(
        event_id=event_id,
        kind=kind,
        at=at,
        delivery_id=_delivery_id(item.get(DELIVERY_ID_ARG)),
        detail=_detail(item),
        consent=_consent_state(kind, item),
    )


def parse(body: str) -> list[FeedbackEvent]:
    """The events of one webhook post, or Malformed naming the first problem."""
    try:
        items = json.loads(body)
    except json.JSONDecodeError as exc:
        raise Malformed(f"body: malformed JSON ({exc})") from None
    if not isinstance(items, list):
        raise Malformed("body: expected a JSON array of events")
    return [_event(index, item) for index, item in enumerate(items)]


def apply(session: Session, events: list[FeedbackEvent]) -> Tally:
    tally = Tally()
    for event in events:
        delivery = session.get(Delivery, event.delivery_id) if event.delivery_id else None
        if event.kind not in EVENTS or delivery is None or delivery.channel != "email":
            log.info(
                "sendgrid event %s (%s) skipped: no e-mail delivery of ours",
                event.event_id,
                event.kind,
            )
            tally.ignored += 1
            continue
        if not history.record(
            session, delivery.id, event.kind, event.detail, SOURCE, event.at, event.event_id
        ):
            tally.replayed += 1
            continue
        tally.recorded += 1
        if event.consent:
            consent.record(
                session, delivery.profile_id, "email", event.consent, event.at, event.event_id
            )
            log.info(
                "profile %s: email %s (sendgrid %s)", delivery.profile_id, event.consent, event.kind
            )
    return tally
