"""Making deliveries: claim a batch of rows, call the channels concurrently, record what the
providers said.

A send job claims its own row and up to `CARILLON_DELIVERY_BATCH_SIZE - 1` other due rows of
its channel in one transaction (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so two workers take
disjoint rows), each row claimed and checked in turn as if alone (consent, quiet hours, caps see
the rows claimed before it). The claim (`pending` → `sending`) is one conditional UPDATE, so a
redelivered queue message or a second worker finds nothing to do: no delivery is sent twice.
The calls go out on this process's sending loop (`app.delivery.sender`), many in flight per
channel, one per delivery or, for a channel that batches, one per group of deliveries; no
transaction is held open across them. The answers are written in one transaction.

A row that breaks the batch (content that is not an object, a check that raises) is found by
doing the batch again one row per transaction: that row fails alone, visibly, and the rest go.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app import clock
from app.db import is_postgres, session_scope
from app.delivery import checks, history, outbox, rate_limit, state
from app.delivery.models import DRY_RUN, FAILED, PENDING, SENDING, SENT, Delivery
from app.delivery.retry_state import record_retry, retries_due
from app.delivery.sender import Answer, PutOff, Sender
from app.journeys import catalog
from app.ops import logs
from app.ops.context import deliveries_ids, delivery_log_ids
from app.profiles import consent, repository
from app.profiles.models import Profile
from app.profiles.view import views
from app.settings import get_settings
from channels.base import Channel, Feedback, Message, Outcome, Recipient, SendResult
from channels.dry_run import dry_run_note
from channels.registry import build_channels

log = logging.getLogger(__name__)

_STATUS = {Outcome.SENT: SENT, Outcome.DRY_RUN: DRY_RUN, Outcome.FAILED: FAILED}


@lru_cache
def channels() -> dict[str, Channel]:
    return build_channels(get_settings())


_sender_lock = threading.Lock()
_sender: Sender | None = None


def sender() -> Sender:
    """This process's sending loop over the current adapters: rebuilt when they are (new
    settings), the old loop closed once the batches it is sending have come back. Looked up
    under the lock, so threads starting together share one loop."""
    global _sender
    with _sender_lock:
        built = channels()
        if _sender is None or _sender.channels is not built:
            old, _sender = _sender, Sender(built, get_settings())
            if old is not None:
                old.close()
        return _sender


def close_channels() -> None:
    """Stop the sending loop and release the adapters' open connections; a later send builds
    them again. Called once the worker's threads have stopped, so no batch is in flight."""
    global _sender
    with _sender_lock:
        running, _sender = _sender, None
    if running is not None:
        running.close()
    if channels.cache_info().currsize:
        built = channels()
        channels.cache_clear()
        for channel in built.values():
            channel.close()


def deliver(delivery_id: int) -> None:
    """Make this one delivery (a batch of one): what a replay, a simulation and the tests use."""
    deliver_batch(delivery_id, None, 1)


def deliver_batch(delivery_id: int, channel: str | None, limit: int | None = None) -> None:
    """Make this delivery and up to `limit - 1` (CARILLON_DELIVERY_BATCH_SIZE) other due ones
    of `channel`."""
    messages = _claim_batch(delivery_id, channel, limit or get_settings().delivery_batch_size)
    if not messages:
        log.info("delivery %s: nothing to do (already handled or cancelled)", delivery_id)
        return
    known = deliveries_ids([int(m.delivery_id) for m in messages])
    log_ids = {m.delivery_id: delivery_log_ids(int(m.delivery_id), known) for m in messages}
    answers = sender().send(messages, log_ids)
    limiter = rate_limit.limiter()
    for message, answer in zip(messages, answers, strict=True):
        if isinstance(answer, SendResult):
            limiter.observe(message.channel, answer)  # a 429 slows every worker down
    done = [(m, a) for m, a in zip(messages, answers, strict=True) if a is not None]
    _until_written(lambda: _per_row_on_error(done, _record_all, _record_one))
    for message, answer in done:
        with logs.scope(**log_ids[message.delivery_id]):  # its own ids, not the job's row's
            _log_answer(message, answer)


def _candidates(
    session: Session, delivery_id: int, channel: str | None, limit: int
) -> list[Row[int, str]]:
    """The seed row and the oldest other due rows of its channel (the pending index's order),
    locked; in the order their people's locks are taken (by person, so two workers' batches
    never lock two people in opposite orders)."""
    seed = select(Delivery.id, Delivery.profile_id).where(Delivery.id == delivery_id)
    statements = [seed]
    if channel is not None and limit > 1:
        statements.append(
            select(Delivery.id, Delivery.profile_id)
            .where(
                Delivery.status == PENDING,
                Delivery.channel == channel,
                Delivery.id != delivery_id,
                retries_due(clock.now()),
            )
            .order_by(Delivery.enqueued_at)
            .limit(limit - 1)
        )
    rows: list[Row[int, str]] = []
    for stmt in statements:
        if is_postgres(session):  # two workers take disjoint rows; SQLite has one writer
            stmt = stmt.with_for_update(skip_locked=True)
        rows += session.execute(stmt).all()
    return sorted(rows, key=lambda row: (row.profile_id, row.id))


def _people(session: Session, profile_ids: set[str]) -> dict[str, dict[str, Any]]:
    """The batch's people as the checks and the adapters read them (traits, addresses), in
    two queries for the whole batch: not their segments and computed traits, which no check
    reads (a fallback renders its content from a view of its own)."""
    profiles = session.scalars(select(Profile).where(Profile.id.in_(profile_ids))).all()
    return views(session, profiles, {profile.id: {} for profile in profiles})


def _claim_batch(delivery_id: int, channel: str | None, limit: int) -> list[Message]:
    """Claim and check the batch in one transaction; should a row break it, again one row per
    transaction, the breaking row failed alone."""
    with session_scope() as session:
        ids = [row.id for row in _candidates(session, delivery_id, channel, limit)]
        try:
            with session.begin_nested():
                return _claim_rows(session, ids)
        except OperationalError:
            raise
        except Exception:
            log.exception("a batch of %d deliveries could not be claimed: one at a time", len(ids))
    claimed: list[Message] = []
    for one in ids:
        try:
            with session_scope() as session:
                claimed += _claim_rows(session, [one])
        except OperationalError:
            raise
        except Exception as exc:
            log.exception("delivery %s could not be prepared", one)
            _fail_unpreparable(one, exc)
    return claimed


def _claim(delivery_id: int) -> Message | None:
    """Claim and check this one row in a transaction of its own: the message, or None."""
    claimed = _claim_batch(delivery_id, None, 1)
    return claimed[0] if claimed else None


def _fail_unpreparable(delivery_id: int, exc: Exception) -> None:
    """A row the claim cannot even read or check fails visibly (a dead letter ops can replay
    once fixed) instead of coming back in every batch."""
    with session_scope() as session:
        now = clock.now()
        if state.claim(session, delivery_id, retries_due(now), now):
            note = f"could not be prepared: {type(exc).__name__}: {exc}"[:1000]
            state.finish(session, delivery_id, FAILED, {"error": note, "updated_at": now})


def _claim_rows(session: Session, ids: list[int]) -> list[Message]:
    """Claim the rows and pass the send-time checks, in `ids`' order; a row another worker
    holds, or one the checks suppress or defer, is left out. What the checks read (the rows,
    their trips' versions, the people's address and consent as of now, not as of planning:
    people change their minds) is read for all the rows at once."""
    now = clock.now()
    claimed = state.claim_many(session, ids, retries_due(now), now)
    if not claimed:
        return []
    # Held in this dict while the checks run, so that their `session.get` of a row is answered
    # from the session rather than by a query each.
    rows = {
        row.id: row for row in session.scalars(select(Delivery).where(Delivery.id.in_(claimed)))
    }
    catalog.read_trip_versions(
        session, {row.instance_id for row in rows.values() if row.instance_id is not None}
    )
    people = _people(session, {row.profile_id for row in rows.values()})
    messages = []
    for delivery_id in ids:
        delivery = rows.get(delivery_id)
        if delivery is None:
            continue
        person = people[delivery.profile_id]
        verdict = checks.decide(
            checks.SendContext(session, delivery, person["traits"], now, get_settings())
        )
        if verdict is not None:
            _hold(session, delivery, verdict, now)
            continue
        recipient = Recipient(
            profile_id=delivery.profile_id, email=person["email"], phone=person["phone"]
        )
        messages.append(
            Message(
                delivery_id=str(delivery.id),
                channel=delivery.channel,
                recipient=recipient,
                content=delivery.content,
                journey_id=delivery.journey_id,
            )
        )
    return messages


def _hold(
    session: Session,
    delivery: Delivery,
    verdict: checks.Suppress | checks.Defer | checks.Reroute,
    now: datetime,
) -> None:
    """A check objected: the claim is undone (it made no attempt) and the reason recorded."""
    if isinstance(verdict, checks.Suppress):
        state.suppress(session, delivery, verdict.reason, now)
    elif isinstance(verdict, checks.Reroute):
        units = outbox.units(verdict.channel, verdict.content)
        state.reroute(
            session, delivery, verdict.channel, verdict.content, units, verdict.reason, now
        )
    else:
        state.defer(session, delivery, verdict.until, verdict.reason, now)
    log.info("delivery %s %s", delivery.id, delivery.error)


def _note(result: SendResult) -> str | None:
    """What the row's `error` column says: the provider's own words, or for a dry run that
    nothing left the machine and to whom it would have gone (as `cancelled` rows say why)."""
    if result.outcome is Outcome.DRY_RUN and result.error is None:
        return dry_run_note(result.detail)
    return result.error


def _apply_feedback(
    session: Session,
    delivery_id: int,
    message: Message,
    feedback: tuple[Feedback, ...],
    now: datetime,
) -> None:
    """What the provider said about the person goes onto the profile with the result, so the
    next message is suppressed at claim time instead of being refused again. Written as of
    now and sourced to this delivery: a replay is the same write, a newer opt-in still wins."""
    profile_id, source = message.recipient.profile_id, f"delivery:{delivery_id}"
    for item in feedback:
        if item.consent is not None:
            consent.record(session, profile_id, message.channel, item.consent, now, source)
        if item.traits:
            repository.upsert_traits(session, profile_id, dict(item.traits), now, source)
        history.record(
            session,
            delivery_id,
            item.kind,
            f"recorded on profile {profile_id}",
            message.channel,
            now,
        )


def _until_written(write: Callable[[], None]) -> None:
    """The provider has answered: that answer must reach the database even while it restarts,
    or a message that went out would end `unknown`. The write is retried with back-off for as
    long as the sweeper still takes the row for in flight (the sending timeout less the
    provider timeout, with a margin); past that the error is raised and the row is left to the
    sweeper's policy for calls whose result was lost."""
    settings = get_settings()
    patience = 0.8 * (settings.sending_timeout_seconds - settings.provider_timeout_seconds)
    pause, waited = 0.25, 0.0
    while True:
        try:
            write()
            return
        except OperationalError:
            if waited + pause > patience:
                raise
            log.warning("database unreachable writing a provider's answer; again in %.2fs", pause)
            time.sleep(pause)
            waited += pause
            pause = min(pause * 2, 4.0)


def _per_row_on_error(
    rows: Sequence[tuple[Message, Answer]],
    together: Callable[[Session, Sequence[tuple[Message, Answer]]], None],
    alone: Callable[[Session, Message, Answer], None],
) -> None:
    """`together` in one transaction; should it fail for another reason than the database,
    each row in a transaction of its own, so one bad row does not lose the others' answers (it
    stays `sending`, left to the sweeper)."""
    try:
        with session_scope() as session:
            together(session, rows)
        return
    except OperationalError:
        raise
    except Exception:
        log.exception("the answers of %d deliveries: written one at a time", len(rows))
    for message, answer in rows:
        try:
            with session_scope() as session:
                alone(session, message, answer)
        except OperationalError:
            raise
        except Exception:
            log.exception("delivery %s: its answer could not be written", message.delivery_id)


def _record_all(session: Session, rows: Sequence[tuple[Message, Answer]]) -> None:
    for message, answer in rows:
        _record_one(session, message, answer)


def _record_one(session: Session, message: Message, answer: Answer) -> None:
    delivery_id, now = int(message.delivery_id), clock.now()
    if isinstance(answer, PutOff):
        delivery = session.get(Delivery, delivery_id, with_for_update=True)
        if delivery is not None and delivery.status == SENDING:
            until = now + timedelta(seconds=answer.seconds)
            _hold(session, delivery, checks.Defer(until, answer.reason), now)
        return
    if answer is None:
        return
    note = _note(answer)
    if answer.outcome is Outcome.FAILED and answer.transient:
        record_retry(session, delivery_id, message.channel, answer, note, now)
        return
    finished = state.finish(
        session,
        delivery_id,
        _STATUS[answer.outcome],
        {
            "provider_message_id": answer.provider_message_id,
            "status_code": answer.status_code,
            "error": note,
            "sent_at": now if answer.outcome is not Outcome.FAILED else None,
            "updated_at": now,
        },
    )
    if finished:  # written once: a write done again after an outage adds nothing
        _apply_feedback(session, delivery_id, message, answer.feedback, now)


def _log_answer(message: Message, answer: Answer) -> None:
    if isinstance(answer, SendResult) and not (
        answer.outcome is Outcome.FAILED and answer.transient
    ):
        log.info(
            "delivery %s via %s: %s %s",
            message.delivery_id,
            message.channel,
            answer.outcome.value,
            _note(answer) or "",
        )
