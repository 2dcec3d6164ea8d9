"""Making one delivery: claim the row, call the channel, record what the provider said.

The claim (`pending` → `sending`) is one conditional UPDATE, so a redelivered queue message or
a second worker finds nothing to do: one provider call per delivery. The transaction is not
held open across the provider call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app import clock
from app.db import session_scope
from app.delivery import checks, history, rate_limit, state
from app.delivery.models import DRY_RUN, FAILED, SENDING, SENT, Delivery
from app.delivery.retry_state import retries_due, retry_later
from app.ops.instruments import timed_send
from app.profiles import consent, repository
from app.profiles.models import Profile
from app.profiles.view import view
from app.settings import get_settings
from channels.base import Channel, Feedback, Message, Outcome, Recipient, SendResult
from channels.dry_run import dry_run_note
from channels.registry import build_channels

log = logging.getLogger(__name__)

_STATUS = {Outcome.SENT: SENT, Outcome.DRY_RUN: DRY_RUN, Outcome.FAILED: FAILED}


@lru_cache
def channels() -> dict[str, Channel]:
    return build_channels(get_settings())


def close_channels() -> None:
    """Release the adapters' open connections; a later send builds them again."""
    if channels.cache_info().currsize:
        built = channels()
        channels.cache_clear()
        for channel in built.values():
            channel.close()


def _claim(delivery_id: int) -> Message | None:
    """Claim the row and pass the send-time checks in one transaction: a row another worker
    holds, or one the checks suppress or defer, comes back as None."""
    with session_scope() as session:
        now = clock.now()
        if not state.claim(session, delivery_id, retries_due(now), now):
            return None
        delivery = session.get_one(Delivery, delivery_id)
        profile = session.get_one(Profile, delivery.profile_id)
        # The address and consent as of now, not as of planning: people change their minds.
        person = view(session, profile)
        verdict = checks.decide(
            checks.SendContext(session, delivery, person["traits"], now, get_settings())
        )
        if verdict is not None:
            _hold(session, delivery, verdict, now)
            return None
        return Message(
            delivery_id=str(delivery.id),
            channel=delivery.channel,
            recipient=Recipient(
                profile_id=profile.id, email=person["email"], phone=person["phone"]
            ),
            content=delivery.content,
            journey_id=delivery.journey_id,
        )


def _hold(
    session: Session, delivery: Delivery, verdict: checks.Suppress | checks.Defer, now: datetime
) -> None:
    """A check objected: the claim is undone (it made no attempt) and the reason recorded."""
    if isinstance(verdict, checks.Suppress):
        state.suppress(session, delivery, verdict.reason, now)
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


def _paced(message: Message) -> bool:
    """Take a token of the provider account's rate limit, waiting for a reserved turn.

    After the claim, not before: only a delivery that passed its checks and will really be sent
    spends the provider's budget (a duplicate queue message or a suppressed row spends none).
    The row is `sending` meanwhile, for at most the bounded wait; a turn further off puts the
    delivery back to pending with the attempt undone, so no thread sleeps long."""
    wait = rate_limit.limiter().acquire(message.channel)
    if wait is None:
        return True
    with session_scope() as session:
        delivery = session.get(Delivery, int(message.delivery_id), with_for_update=True)
        if delivery is not None and delivery.status == SENDING:
            now = clock.now()
            reason = f"provider rate limit of {message.channel}: no turn free"
            _hold(session, delivery, checks.Defer(now + timedelta(seconds=wait), reason), now)
    return False


def deliver(delivery_id: int) -> None:
    message = _claim(delivery_id)
    if message is None:
        log.info("delivery %s: nothing to do (already handled or cancelled)", delivery_id)
        return
    channel = channels()[message.channel]  # built first: once the token is ours, the call goes
    if not _paced(message):
        return
    result = timed_send(channel, message)  # latency into /metrics
    rate_limit.limiter().observe(message.channel, result)  # a 429 slows every worker down
    note = _note(result)
    now = clock.now()
    if result.outcome is Outcome.FAILED and result.transient:
        _until_written(lambda: retry_later(delivery_id, message.channel, result, note, now))
        return
    _until_written(lambda: _record(delivery_id, message, result, note, now))
    log.info(
        "delivery %s via %s: %s %s",
        delivery_id,
        message.channel,
        result.outcome.value,
        note or "",
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


def _record(
    delivery_id: int, message: Message, result: SendResult, note: str | None, now: datetime
) -> None:
    with session_scope() as session:
        state.finish(
            session,
            delivery_id,
            _STATUS[result.outcome],
            {
                "provider_message_id": result.provider_message_id,
                "status_code": result.status_code,
                "error": note,
                "sent_at": now if result.outcome is not Outcome.FAILED else None,
                "updated_at": now,
            },
        )
        _apply_feedback(session, delivery_id, message, result.feedback, now)
