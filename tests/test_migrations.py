"""The Alembic migrations build exactly the schema the models describe, on SQLite and on
PostgreSQL, and running them again on an up-to-date database changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, inspect, select

from app import clock
from app.db import get_engine, session_scope
from app.events.models import Event
from app.migrate import alembic_config, upgrade
from app.models import Base

# Statements that would change the schema or its data; an up-to-date upgrade runs none.
WRITES = ("CREATE", "ALTER", "DROP", "INSERT", "UPDATE", "DELETE", "REPLACE", "TRUNCATE")


def head() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision() -> str | None:
    with get_engine().connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


@contextmanager
def recorded_sql() -> Iterator[list[str]]:
    """Every statement sent to the database while the block runs."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_one_linear_history() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert len(script.get_heads()) == 1, "migrations branch: merge the heads"


def test_database_is_at_the_latest_revision() -> None:
    # The session fixture upgraded an empty database (a new SQLite file, or an emptied
    # PostgreSQL schema) with app.migrate.upgrade, as `carillon db upgrade` does.
    assert current_revision() == head()


def test_migrations_match_the_models() -> None:
    # Nothing is ignored: column types, nullability, server defaults, indexes (including the
    # partial one), unique constraints and foreign keys are compared on both backends.
    with get_engine().connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        differences = compare_metadata(context, Base.metadata)
    assert differences == [], (
        "the models and the migrations disagree; add a migration "
        "(alembic revision --autogenerate) for:\n" + "\n".join(map(str, differences))
    )


def test_every_model_table_exists() -> None:
    with get_engine().connect() as connection:
        tables = set(inspect(connection).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables


def test_second_upgrade_is_a_no_op() -> None:
    now = clock.now()
    with session_scope() as session:
        session.add(
            Event(
                source="default",
                message_id="kept",
                type="track",
                name="Order Completed",
                user_id="u1",
                timestamp=now,
                received_at=now,
                payload={"event": "Order Completed"},
                enqueued_at=now,
            )
        )
    before = current_revision()

    with recorded_sql() as statements:
        upgrade()

    writes = [s for s in statements if (s.split() or [""])[0].upper() in WRITES]
    assert writes == []
    assert statements, "the upgrade did not even read the current revision"
    assert current_revision() == before == head()
    with session_scope() as session:
        assert session.scalars(select(Event.message_id)).all() == ["kept"]
