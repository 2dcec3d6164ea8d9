"""Engine and session factory: the one way to open a database session.

`session_scope()` commits on success and rolls back on error; an HTTP route gets the same as a
dependency (`DbSession`), one transaction per request. Work that must only happen once the
transaction is durable (enqueueing ids on the broker) is registered with `after_commit()` and
runs after the commit succeeds; a rollback drops it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache, partial
from typing import Annotated, Any, TypeVar

from fastapi import Depends
from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Engine,
    Integer,
    MetaData,
    create_engine,
    event,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, SessionTransaction, sessionmaker
from sqlalchemy.types import TypeDecorator

from app.errors import Unavailable
from app.settings import get_settings

T = TypeVar("T")

log = logging.getLogger(__name__)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# JSONB on PostgreSQL (indexable, compact), JSON text elsewhere.
JSONType = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the offset otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use app.clock.now()")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _configure_sqlite(engine: Engine) -> None:
    """Serialize SQLite writers up front: BEGIN IMMEDIATE avoids the upgrade deadlock
    ("database is locked") when worker threads read then write concurrently."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


@lru_cache
def get_engine() -> Engine:
    url = get_settings().database_url
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


@lru_cache
def _session_factory() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def dialect_insert(session: Session) -> Any:
    """`insert()` of the session's dialect, for `ON CONFLICT` (PostgreSQL and SQLite alike)."""
    return postgresql.insert if is_postgres(session) else sqlite.insert


@contextmanager
def session_scope() -> Iterator[Session]:
    session = _session_factory()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# Seconds a client should wait before resending when the database is unreachable.
RETRY_AFTER_SECONDS = 5


def session_dependency(when_down: str) -> Callable[[], Iterator[Session]]:
    """A FastAPI dependency giving a route its request's one transaction: committed once the
    route has returned, rolled back if it raised; an unreachable database answers 503 saying
    `when_down`.

    Declare it with `scope="function"` (as `DbSession` does): by default FastAPI runs a yield
    dependency's exit after the response is sent, which would answer 200 before the commit,
    and send jobs enqueued after commit after the client had its answer.
    """

    def db_session() -> Iterator[Session]:
        try:
            with session_scope() as session:
                yield session
        except (OperationalError, InterfaceError) as exc:
            log.warning("database unavailable, answered 503: %s", str(exc).splitlines()[0])
            raise Unavailable(when_down, RETRY_AFTER_SECONDS) from None

    return db_session


db_session = session_dependency("database unavailable: retry later")
DbSession = Annotated[Session, Depends(db_session, scope="function")]


@dataclass(frozen=True)
class _Together:
    """An after-commit hook run once for all the items registered under one key."""

    key: Hashable
    item: Any
    run: Callable[[list[Any]], None]


def after_commit(session: Session, fn: Callable[[], None] | _Together) -> None:
    """Run `fn` once the session's outermost transaction has committed.

    Registered inside a savepoint (`begin_nested()`), `fn` is dropped if that savepoint rolls
    back, and still waits for the outermost commit if it is released: a released savepoint is
    not durable, and a job that ran before the commit would not see its row.
    """
    owner = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault("after_commit", []).append((owner, fn))


def after_commit_together(
    session: Session, key: Hashable, item: Any, run: Callable[[list[Any]], None]
) -> None:
    """Like `after_commit`, for work cheaper done for many items at once: `run` is called once
    the outermost transaction has committed, with the items registered under `key` in it (in
    order, those of a rolled-back savepoint left out)."""
    after_commit(session, _Together(key, item, run))


def _within(owner: SessionTransaction | None, ended: SessionTransaction) -> bool:
    """True when a hook registered in `owner` belongs to `ended` or to one of its savepoints."""
    while owner is not None:
        if owner is ended:
            return True
        owner = owner.parent
    return False


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint released: its hooks now wait for the enclosing transaction
    together: dict[Hashable, tuple[Callable[[list[Any]], None], list[Any]]] = {}
    hooks: list[Callable[[], None]] = []
    for _owner, fn in session.info.pop("after_commit", []):
        if isinstance(fn, _Together):
            if fn.key not in together:
                together[fn.key] = (fn.run, [])
                hooks.append(partial(fn.run, together[fn.key][1]))
            together[fn.key][1].append(fn.item)
        else:
            hooks.append(fn)
    for hook in hooks:
        try:
            hook()
        except Exception:  # the sweeper re-enqueues whatever this failed to hand over
            log.exception("after-commit hook failed")


@event.listens_for(Session, "after_soft_rollback")
def _drop_after_commit(session: Session, ended: SessionTransaction) -> None:
    hooks = session.info.get("after_commit")
    if not hooks:
        return
    if ended.parent is None:
        session.info.pop("after_commit", None)
        return
    # A savepoint rolled back: only the work registered inside it is undone.
    session.info["after_commit"] = [(o, fn) for o, fn in hooks if not _within(o, ended)]


# Autoincrementing 64-bit ids; SQLite only autoincrements a plain INTEGER primary key.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def forget_engine() -> None:
    """Drop the engine and session factory, so the next session follows the current
    CARILLON_DATABASE_URL (the journey simulator switches to a scratch file)."""
    _session_factory.cache_clear()
    get_engine.cache_clear()


def once_per_session(session: Session, key: str, read: Callable[[Session], T]) -> T:
    """`read(session)` the first time `key` is asked for in this session, then its answer:
    for the catalogs every routed event consults (a batch is one session, so a file reloaded
    meanwhile is seen by the next batch). Whatever changes what `read` returns pops `key`."""
    if key not in session.info:
        session.info[key] = read(session)
    found: T = session.info[key]
    return found
