"""A delivery's states and the only ways between them.

Every change of `deliveries.status` goes through a function here, which writes the row and its
history (`delivery_events`) together, in the caller's transaction. A move from a state the
transition does not start from raises `IllegalTransition` for a row the caller holds; the
conditional moves (claim, finish, cancel, replay) are one `UPDATE … WHERE status IN (…)` and
report how many rows moved, since a concurrent worker may have moved the row first.

```
            plan                       claim                    finish
  (step) ───────▶ pending ──────────────────────▶ sending ───────────────▶ sent | dry_run | failed
     │             ▲  ▲ │                          │ │ │ │
     │ unrenderable│  │ └─cancel──▶ cancelled      │ │ │ └─suppress (policy)──▶ suppressed
     ▼             │  └──────────defer (policy, rate limit)┘ │ │
   failed          └──retry (transient, back-off)────────────┘ └─give_up──▶ dead
                   └──resend (sweeper: idempotent channel)─── abandoned ──▶ unknown (sweeper)
  failed | dead | unknown ──replay (ops)──▶ pending
  sending ──reroute (a budget's fallback: another channel, same row)──▶ pending
```

A `channel: preferred` send none of the person's channels would do for is written `skipped`
by its step, as an unrenderable one is written `failed`; a skipped row never moves again.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, update
from sqlalchemy.orm import Session

from app.delivery import history
from app.delivery.jobs import send_delivery
from app.delivery.models import (
    CANCELLED,
    DEAD,
    DRY_RUN,
    FAILED,
    PENDING,
    SENDING,
    SENT,
    SUPPRESSED,
    UNKNOWN,
    Delivery,
)
from app.queue import enqueue

# The states a person must act on (replay): the one definition of a dead letter.
DEAD_LETTERS = (FAILED, DEAD, UNKNOWN)
FINISHED = (SENT, DRY_RUN, FAILED)


class IllegalTransition(RuntimeError):
    """A bug: some code tried to move a delivery in a way the state machine does not allow."""


@dataclass(frozen=True)
class Transition:
    name: str
    sources: frozenset[str]
    targets: frozenset[str]


def _t(name: str, sources: Collection[str], *targets: str) -> Transition:
    return Transition(name, frozenset(sources), frozenset(targets))


CLAIM = _t("claim", {PENDING}, SENDING)
SUPPRESS = _t("suppress", {SENDING}, SUPPRESSED)
DEFER = _t("defer", {SENDING, PENDING}, PENDING)
RETRY = _t("retry", {SENDING}, PENDING)
GIVE_UP = _t("give_up", {SENDING}, DEAD)
FINISH = _t("finish", {SENDING}, *FINISHED)
CANCEL = _t("cancel", {PENDING}, CANCELLED)
RESEND = _t("resend", {SENDING}, PENDING)
REROUTE = _t("reroute", {SENDING}, PENDING)
ABANDON = _t("abandon", {SENDING}, UNKNOWN)
REPLAY = _t("replay", DEAD_LETTERS, PENDING)
TRANSITIONS = (
    CLAIM,
    SUPPRESS,
    DEFER,
    REROUTE,
    RETRY,
    GIVE_UP,
    FINISH,
    CANCEL,
    RESEND,
    ABANDON,
    REPLAY,
)


def allowed(source: str, target: str) -> bool:
    return any(source in t.sources and target in t.targets for t in TRANSITIONS)


def _move(delivery: Delivery, transition: Transition, target: str, now: datetime) -> None:
    if delivery.status not in transition.sources or target not in transition.targets:
        raise IllegalTransition(
            f"delivery {delivery.id}: {transition.name} cannot go from {delivery.status} "
            f"to {target}"
        )
    delivery.status = target
    delivery.updated_at = now


def _conditional(
    session: Session,
    transition: Transition,
    target: str,
    where: ColumnElement[bool],
    values: dict[str, Any],
) -> list[int]:
    """The rows matching `where` that are in one of the transition's sources, moved; their ids."""
    if target not in transition.targets:
        raise IllegalTransition(f"{transition.name} never leads to {target}")
    return list(
        session.scalars(
            update(Delivery)
            .where(where, Delivery.status.in_(transition.sources))
            .values(status=target, **values)
            .returning(Delivery.id)
        )
    )


def claim_many(
    session: Session, delivery_ids: Sequence[int], due: ColumnElement[bool], now: datetime
) -> set[int]:
    """pending → sending for each row still pending and due, counting an attempt, in one
    statement; the ids claimed (not the others: another worker has them, they are not due, or
    no longer pending). No history: the outcome that follows says what happened."""
    where = Delivery.id.in_(delivery_ids) & due
    values = {"attempts": Delivery.attempts + 1, "updated_at": now}
    return set(_conditional(session, CLAIM, SENDING, where, values))


def claim(session: Session, delivery_id: int, due: ColumnElement[bool], now: datetime) -> bool:
    """`claim_many` for one row."""
    return delivery_id in claim_many(session, [delivery_id], due, now)


def suppress(session: Session, delivery: Delivery, reason: str, now: datetime) -> None:
    """A send-time check refused it (consent, a dropped cap): never sent, never retried. The
    claim made no attempt, so it is given back."""
    _move(delivery, SUPPRESS, SUPPRESSED, now)
    delivery.attempts -= 1
    delivery.error = f"suppressed: {reason}"
    history.record(session, delivery.id, "suppressed", reason, "policy", now)


def defer(
    session: Session,
    delivery: Delivery,
    until: datetime,
    reason: str,
    now: datetime,
    *,
    unclaim: bool = True,
) -> None:
    """Not now (quiet hours, a frequency cap, no rate-limit turn): back to pending, not due
    before `until`; the claim made no attempt."""
    _move(delivery, DEFER, PENDING, now)
    if unclaim:
        delivery.attempts -= 1
    delivery.error = f"deferred until {until.isoformat()}: {reason}"
    _due_later(session, delivery, until, now)
    history.record(session, delivery.id, "deferred", delivery.error, "policy", now)


def reroute(
    session: Session,
    delivery: Delivery,
    channel: str,
    content: dict[str, Any],
    units: int,
    reason: str,
    now: datetime,
) -> None:
    """A budget's fallback: the same message, due now on another channel's queue; the claim
    made no attempt. One row still, so the step still has one delivery."""
    _move(delivery, REROUTE, PENDING, now)
    was = delivery.channel
    delivery.attempts -= 1
    delivery.channel, delivery.content, delivery.units = channel, content, units
    delivery.error, delivery.next_attempt_at, delivery.enqueued_at = None, None, now
    history.record(
        session,
        delivery.id,
        "fallback",
        f"{reason}: sent by {channel} instead of {was}",
        "policy",
        now,
    )
    enqueue(session, send_delivery(channel), delivery.id)


def retry(
    session: Session, delivery: Delivery, until: datetime, note: str | None, now: datetime
) -> None:
    """A transient provider error with attempts left: back to pending after a back-off."""
    _move(delivery, RETRY, PENDING, now)
    delivery.error = note
    _due_later(session, delivery, until, now)
    detail = f"attempt {delivery.attempts}: {note or ''}".rstrip(": ")
    history.record(session, delivery.id, "retry", detail, "retries", now)


def give_up(session: Session, delivery: Delivery, note: str | None, now: datetime) -> None:
    """Transient errors until the channel's attempts ran out: a dead letter."""
    _move(delivery, GIVE_UP, DEAD, now)
    delivery.error = note
    delivery.next_attempt_at = None
    detail = f"attempt {delivery.attempts}: {note or ''}".rstrip(": ")
    history.record(session, delivery.id, "dead", detail, "retries", now)


def finish(session: Session, delivery_id: int, target: str, values: dict[str, Any]) -> bool:
    """sending → sent | dry_run | failed with the provider's answer; False if the row was no
    longer sending (the sweeper settled it meanwhile)."""
    return len(_conditional(session, FINISH, target, Delivery.id == delivery_id, values)) == 1


def cancel(session: Session, where: ColumnElement[bool], reason: str, now: datetime) -> int:
    """Pending messages nobody should get any more (the trip exited): cancelled with why."""
    return len(
        _conditional(
            session, CANCEL, CANCELLED, where, {"error": f"cancelled: {reason}", "updated_at": now}
        )
    )


def resend(session: Session, delivery: Delivery, detail: str, now: datetime) -> None:
    """Its worker was lost during the provider call, on a channel where a repeat is harmless."""
    _move(delivery, RESEND, PENDING, now)
    delivery.next_attempt_at = None
    delivery.enqueued_at = now
    history.record(session, delivery.id, "resent", detail, "sweeper", now)
    enqueue(session, send_delivery(delivery.channel), delivery.id)


def abandon(session: Session, delivery: Delivery, note: str, now: datetime) -> None:
    """Its worker was lost during the provider call: it may or may not have gone out."""
    _move(delivery, ABANDON, UNKNOWN, now)
    delivery.next_attempt_at = None
    delivery.error = note
    history.record(session, delivery.id, "unknown", note, "sweeper", now)


def replay(session: Session, delivery: Delivery, was: str, now: datetime) -> bool:
    """A dead letter back in the outbox with a fresh retry budget (ops fixed the cause); the
    history keeps every earlier attempt. False if someone replayed it first."""
    moved = _conditional(
        session,
        REPLAY,
        PENDING,
        Delivery.id == delivery.id,
        {
            "attempts": 0,
            "error": None,
            "status_code": None,
            "provider_message_id": None,
            "next_attempt_at": None,
            "enqueued_at": now,
            "updated_at": now,
        },
    )
    if moved:
        history.record(session, delivery.id, "replayed", was, "ops", now)
        enqueue(session, send_delivery(delivery.channel), delivery.id)
    return len(moved) == 1


def _due_later(session: Session, delivery: Delivery, until: datetime, now: datetime) -> None:
    """The send job comes back with that delay after commit, and the sweeper hands the row over
    then should that delayed message be lost."""
    delivery.next_attempt_at = until
    delivery.enqueued_at = now
    enqueue(
        session,
        send_delivery(delivery.channel),
        delivery.id,
        delay_seconds=(until - now).total_seconds(),
    )
