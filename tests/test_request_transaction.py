"""A request is one transaction (`app.db.DbSession`): the answer is sent only once it has
committed, the jobs it enqueued reach the broker only after that commit, and an error answer
commits nothing and enqueues nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dramatiq
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from starlette.types import Message, Receive, Scope, Send

from app import clock
from app.db import DbSession, forget_engine, get_engine
from app.errors import CarillonError, Conflict, answer
from app.events.models import Event
from app.events.service import parse_event, store
from app.main import create_app
from app.settings import get_settings
from app.tasks import broker


def _visible(ids: list[int] | None = None) -> int:
    """How many events (of these ids) another connection sees: what a worker would find."""
    count = select(func.count()).select_from(Event)
    if ids is not None:
        count = count.where(Event.id.in_(ids))
    with get_engine().connect() as connection:
        return int(connection.execute(count).scalar_one())


class EnqueueSpy(dramatiq.Middleware):
    """Records, as each routing job reaches the broker, whether its events are committed."""

    def __init__(self) -> None:
        self.enqueued: list[tuple[list[int], int]] = []

    def before_enqueue(self, broker: dramatiq.Broker, message: Any, delay: int | None) -> None:
        if message.actor_name == "events.process":
            ids = list(message.args[0])
            self.enqueued.append((ids, _visible(ids)))


@pytest.fixture
def spy() -> Iterator[EnqueueSpy]:
    watcher = EnqueueSpy()
    broker.add_middleware(watcher)
    yield watcher
    broker.middleware.remove(watcher)


class AnswerSpy:
    """An ASGI wrapper noting, when the answer starts, what the database and broker hold."""

    def __init__(self, app: FastAPI, enqueues: EnqueueSpy) -> None:
        self.app = app
        self.enqueues = enqueues
        self.at_answer: list[tuple[int, int, int]] = []  # (status, events stored, jobs sent)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start":
                stored = _visible()
                self.at_answer.append((message["status"], stored, len(self.enqueues.enqueued)))
            await send(message)

        await self.app(scope, receive, watched)


def test_the_answer_follows_the_commit_and_the_job_follows_the_commit(spy: EnqueueSpy) -> None:
    asgi = AnswerSpy(create_app(), spy)
    answered = TestClient(asgi).post(
        "/v1/track",
        json={"userId": "ada", "event": "Signed Up", "messageId": "m-1"},
        auth=("test-key", ""),
    )
    assert answered.status_code == 200, answered.text
    [(ids, visible)] = spy.enqueued
    assert visible == len(ids) == 1  # the worker finds the row its job names
    assert asgi.at_answer == [(200, 1, 1)]  # stored and handed over before the 200


def _refusing_app() -> FastAPI:
    """A route that stores an event (enqueueing its routing job after commit), then refuses."""
    app = FastAPI()
    app.add_exception_handler(CarillonError, answer)

    def store_then_refuse(session: DbSession) -> None:
        received = clock.now()
        event = parse_event({"type": "track", "userId": "ada", "event": "X"}, received)
        store(session, [event], "default", received)
        raise Conflict("refused after writing")

    app.add_api_route("/v1/refuse", store_then_refuse, methods=["POST"])
    app.add_api_route("/ops/refuse", store_then_refuse, methods=["POST"])
    return app


def test_an_error_answer_commits_nothing_and_enqueues_nothing(spy: EnqueueSpy) -> None:
    client = TestClient(_refusing_app())
    refused = client.post("/v1/refuse")
    assert refused.status_code == 409
    assert refused.json() == {
        "success": False,
        "code": "conflict",
        "message": "refused after writing",
    }
    # The ops API keeps FastAPI's error shape, which its dashboard reads.
    assert client.post("/ops/refuse").json() == {"detail": "refused after writing"}
    assert _visible() == 0
    assert spy.enqueued == []


@pytest.fixture
def database_down(settings_env: pytest.MonkeyPatch) -> Iterator[None]:
    """A database that refuses connections: nothing listens on port 1."""
    settings_env.setenv("CARILLON_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:1/x")
    settings_env.setenv("CARILLON_ADMIN_TOKEN", "an-admin-token")
    get_settings.cache_clear()
    forget_engine()
    yield
    settings_env.undo()
    get_settings.cache_clear()
    forget_engine()


def test_an_unreachable_database_answers_503_with_retry_after(database_down: None) -> None:
    client = TestClient(create_app())
    track = client.post(
        "/v1/track", json={"userId": "ada", "event": "Signed Up"}, auth=("test-key", "")
    )
    assert (track.status_code, track.headers["retry-after"]) == (503, "5")
    assert track.json() == {
        "success": False,
        "code": "unavailable",
        "message": "database unavailable: retry later with the same messageIds",
    }
    ops = client.get("/ops/dead-letters", headers={"Authorization": "Bearer an-admin-token"})
    assert (ops.status_code, ops.headers["retry-after"]) == (503, "5")
    assert ops.json() == {"detail": "database unavailable: retry later"}
