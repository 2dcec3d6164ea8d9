"""The export: every row held about a person, and a map of the tables that cannot miss one."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import ForeignKey, inspect, select

from app.db import get_engine, session_scope
from app.models import Base
from app.profiles import records
from app.profiles.models import ProfileAudit
from tests.helpers import Pipeline, track
from tests.profiles.conftest import ADMIN, EMAIL, PHONE, READ_KEY, USER, bearer, post, shopper


def _reaches_a_person(table_name: str) -> bool:
    """A `profile_id` column, or a foreign key to a table that reaches a person."""
    table = Base.metadata.tables[table_name]
    if "profile_id" in table.columns:
        return True
    keys: list[ForeignKey] = [fk for column in table.columns for fk in column.foreign_keys]
    return any(fk.column.table.name in records.HOLDINGS for fk in keys)


def test_every_table_is_covered_or_said_to_hold_nothing_personal() -> None:
    """A new table must say how it reaches a person (records.HOLDINGS), or why it holds
    nothing about anybody (records.NOT_PERSONAL); else access and erasure requests miss it."""
    tables = set(inspect(get_engine()).get_table_names())
    assert tables == set(records.HOLDINGS) | set(records.NOT_PERSONAL)
    for name in Base.metadata.tables:
        if _reaches_a_person(name):
            assert name in records.HOLDINGS, f"{name} references people: add it to HOLDINGS"


def test_the_export_holds_every_row_about_the_person_and_no_one_else(
    client: TestClient, pipeline: Pipeline
) -> None:
    shopper(client, pipeline)
    post(client, track("someone-else", "Cart Abandoned", {"total": 30}))
    pipeline.drain()
    answer = client.get(f"/v1/profiles/phone:{PHONE}/export", headers=bearer(READ_KEY))
    assert answer.status_code == 200, answer.text
    document = answer.json()
    tables = document["tables"]
    assert set(tables) == set(records.HOLDINGS)
    assert {(i["kind"], i["value"]) for i in document["identities"]} >= {
        ("email", EMAIL),
        ("user_id", USER),
    }
    names = sorted(e["name"] or e["type"] for e in tables["events"])
    assert names == [
        "Cart Abandoned",
        "Instagram Post Liked",
        "Newsletter Subscribed",
        "Product Viewed",
        "identify",
    ]
    assert "someone-else" not in answer.text
    assert {d["channel"] for d in tables["deliveries"]} == {"sms", "meta_audience"}
    assert [t["status"] for t in tables["journey_timers"]] == ["pending"]
    assert {t["name"] for t in tables["profile_traits"]} >= {"email", "phone", "sms_opt_in"}


def test_an_export_is_audited_with_the_credential_named_not_stored(
    client: TestClient, pipeline: Pipeline
) -> None:
    shopper(client, pipeline)
    client.get(f"/v1/profiles/{USER}/export", headers=bearer(READ_KEY))
    client.get(f"/v1/profiles/{USER}/export", headers=bearer(ADMIN))
    client.get(f"/v1/profiles/{USER}", headers=bearer(ADMIN))  # showing is not an export
    with session_scope() as session:
        rows = session.scalars(select(ProfileAudit).order_by(ProfileAudit.id)).all()
        assert [(r.action, r.actor) for r in rows] == [
            ("export", "read key crm"),
            ("export", "admin token"),
        ]
        assert rows[0].detail["rows"]["events"] == 5
        assert all(READ_KEY not in str(r.detail) and USER not in str(r.detail) for r in rows)
