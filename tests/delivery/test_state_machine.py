"""The delivery state machine: the moves it allows, the ones it refuses, and that nothing else
in Carillon writes a delivery's status."""

from __future__ import annotations

import ast
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import clock
from app.db import session_scope
from app.delivery import state
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
    DeliveryEvent,
)
from tests.delivery.conftest import SMS, journey_yaml
from tests.helpers import REPO, load, person, route

ALL = (PENDING, SENDING, SENT, DRY_RUN, FAILED, DEAD, CANCELLED, SUPPRESSED, UNKNOWN)


@pytest.fixture
def delivery_id(tmp_path: Path) -> int:
    """One real pending SMS, planned by a journey."""
    load(tmp_path, journey_yaml("hello", "Hello", SMS))
    route(person("ana", sms_opt_in=True), {"type": "track", "userId": "ana", "event": "Hello"})
    with session_scope() as session:
        return session.scalars(select(Delivery.id)).one()


def set_status(delivery_id: int, status: str) -> None:
    with session_scope() as session:
        session.get_one(Delivery, delivery_id).status = status


def test_the_allowed_moves_are_exactly_the_diagram() -> None:
    moves = {(a, b) for a in ALL for b in ALL if state.allowed(a, b)}
    assert moves == {
        (PENDING, SENDING),
        (PENDING, PENDING),  # deferred before a claim
        (PENDING, CANCELLED),
        (SENDING, PENDING),  # deferred, retried, resent
        (SENDING, SENT),
        (SENDING, DRY_RUN),
        (SENDING, FAILED),
        (SENDING, DEAD),
        (SENDING, SUPPRESSED),
        (SENDING, UNKNOWN),
        (FAILED, PENDING),  # replay
        (DEAD, PENDING),
        (UNKNOWN, PENDING),
    }
    # Finished rows never move again, except dead letters by a person's replay.
    for final in (SENT, DRY_RUN, CANCELLED, SUPPRESSED):
        assert not any(state.allowed(final, b) for b in ALL)


@pytest.mark.parametrize(
    ("status", "move"),
    [
        (SENT, lambda s, d, now: state.give_up(s, d, "x", now)),
        (PENDING, lambda s, d, now: state.suppress(s, d, "no consent", now)),
        (DRY_RUN, lambda s, d, now: state.abandon(s, d, "lost", now)),
        (CANCELLED, lambda s, d, now: state.retry(s, d, now, "x", now)),
        (SUPPRESSED, lambda s, d, now: state.defer(s, d, now, "quiet hours", now)),
        (FAILED, lambda s, d, now: state.resend(s, d, "again", now)),
    ],
)
def test_an_illegal_move_raises_and_writes_nothing(
    delivery_id: int, status: str, move: Callable[[Session, Delivery, datetime], None]
) -> None:
    set_status(delivery_id, status)
    refused = pytest.raises(state.IllegalTransition, match=f"cannot go from {status}")
    with refused, session_scope() as session:
        move(session, session.get_one(Delivery, delivery_id), clock.now())
    with session_scope() as session:
        assert session.get_one(Delivery, delivery_id).status == status
        assert session.scalars(select(DeliveryEvent)).all() == []


def test_conditional_moves_touch_only_rows_in_their_source_states(delivery_id: int) -> None:
    now = clock.now()
    with session_scope() as session:
        assert state.claim(session, delivery_id, Delivery.id.is_not(None), now)
        assert not state.claim(session, delivery_id, Delivery.id.is_not(None), now)  # taken
        assert state.cancel(session, Delivery.id == delivery_id, "exited", now) == 0  # sending
        assert state.finish(session, delivery_id, SENT, {"sent_at": now, "updated_at": now})
        assert not state.finish(session, delivery_id, FAILED, {"updated_at": now})  # once
        delivery = session.get_one(Delivery, delivery_id)
        assert not state.replay(session, delivery, "was sent", now)  # not a dead letter
    with session_scope() as session:
        assert session.get_one(Delivery, delivery_id).status == SENT
    refused = pytest.raises(state.IllegalTransition, match="finish never leads to cancelled")
    with refused, session_scope() as session:
        state.finish(session, delivery_id, CANCELLED, {})


def test_each_move_writes_the_row_and_its_history_together(delivery_id: int) -> None:
    now = clock.now()
    with session_scope() as session:
        assert state.claim(session, delivery_id, Delivery.id.is_not(None), now)
        delivery = session.get_one(Delivery, delivery_id)
        state.defer(session, delivery, now + timedelta(hours=1), "quiet hours", now)
        assert (delivery.status, delivery.attempts) == (PENDING, 0)
        assert delivery.next_attempt_at == now + timedelta(hours=1)
    with session_scope() as session:
        assert state.claim(session, delivery_id, Delivery.id.is_not(None), now)
        delivery = session.get_one(Delivery, delivery_id)
        state.give_up(session, delivery, "HTTP 503", now)
        state.replay(session, delivery, "was dead", now)
    with session_scope() as session:
        kinds = session.scalars(select(DeliveryEvent.kind).order_by(DeliveryEvent.id)).all()
        assert kinds == ["deferred", "dead", "replayed"]
        assert session.get_one(Delivery, delivery_id).status == PENDING


def _writes_delivery_status(tree: ast.AST) -> list[int]:
    """Lines that set a delivery's status by hand: `update(Delivery)…values(status=…)`, or
    `delivery.status = …` / `row.status = …`."""
    lines = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "values"
            and any(k.arg == "status" for k in node.keywords)
            and "update(Delivery)" in ast.unparse(node.func.value)
        ):
            lines.append(node.lineno)
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if (
                    isinstance(target, ast.Attribute)
                    and target.attr == "status"
                    and isinstance(target.value, ast.Name)
                    and target.value.id in ("delivery", "row", "d")
                ):
                    lines.append(node.lineno)
    return lines


def test_only_the_state_machine_writes_a_delivery_status() -> None:
    offenders = {}
    for path in [*(REPO / "app").rglob("*.py"), *(REPO / "channels").rglob("*.py")]:
        if path == REPO / "app" / "delivery" / "state.py":
            continue
        found = _writes_delivery_status(ast.parse(path.read_text(encoding="utf-8")))
        if found:
            offenders[str(path.relative_to(REPO))] = found
    assert offenders == {}
    # The check itself finds what it looks for.
    assert _writes_delivery_status(ast.parse("update(Delivery).values(status='sent')")) == [1]
    assert _writes_delivery_status(ast.parse("row.status = 'sent'")) == [1]
