"""Every row Carillon holds about a person, table by table: what an access request is
answered with (`export`), and what an erasure scrubs (app/profiles/erasure.py).

`HOLDINGS` says how each table reaches a person; `NOT_PERSONAL` says why the others hold
nothing about anybody. tests/profiles/test_records.py fails when a table is in neither, so a
new table cannot silently escape an access or erasure request.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from app import clock
from app.broadcasts.models import Recipient
from app.db import Base
from app.delivery.models import Delivery, DeliveryEvent
from app.events.models import Event
from app.journeys.models import JourneyInstance, Timer
from app.profiles import repository as repo
from app.profiles.models import (
    ANONYMOUS_ID,
    USER_ID,
    ErasedIdentity,
    Identity,
    Profile,
    ProfileAudit,
    Trait,
)
from app.segments.models import ComputedTrait, Membership, TraitEvent
from app.webhooks.models import InboundMessage


@dataclass(frozen=True)
class Person:
    """A profile, the profiles merged into it, and the identities they answer to."""

    profile_id: str
    profile_ids: tuple[str, ...]
    identities: tuple[tuple[str, str], ...]

    def values(self, kind: str) -> list[str]:
        return [value for k, value in self.identities if k == kind]


def person(session: Session, profile: Profile) -> Person:
    merged = session.scalars(select(Profile.id).where(Profile.merged_into == profile.id))
    ids = (profile.id, *merged)
    identities = [
        (i.kind, i.value)
        for i in repo.identities_of_people(session, [profile.id]).get(profile.id, [])
    ]
    return Person(profile.id, ids, tuple(sorted(identities)))


def _events(p: Person) -> ColumnElement[bool]:
    # Events not routed yet carry no profile id, only the ids the shop sent.
    unrouted = and_(
        Event.profile_id.is_(None),
        or_(Event.user_id.in_(p.values(USER_ID)), Event.anonymous_id.in_(p.values(ANONYMOUS_ID))),
    )
    return or_(Event.profile_id.in_(p.profile_ids), unrouted)


def _inbound(p: Person) -> ColumnElement[bool]:
    # A text from a number nobody had yet is kept without a profile, under its sender.
    return or_(
        InboundMessage.profile_id.in_(p.profile_ids), InboundMessage.sender.in_(p.values("phone"))
    )


def _of_deliveries(p: Person) -> ColumnElement[bool]:
    mine = select(Delivery.id).where(Delivery.profile_id.in_(p.profile_ids))
    return DeliveryEvent.delivery_id.in_(mine)


def _of_trips(p: Person) -> ColumnElement[bool]:
    mine = select(JourneyInstance.id).where(JourneyInstance.profile_id.in_(p.profile_ids))
    return Timer.instance_id.in_(mine)


HOLDINGS: dict[str, Callable[[Person], ColumnElement[bool]]] = {
    Profile.__tablename__: lambda p: Profile.id.in_(p.profile_ids),
    Identity.__tablename__: lambda p: Identity.profile_id.in_(p.profile_ids),
    Trait.__tablename__: lambda p: Trait.profile_id.in_(p.profile_ids),
    Event.__tablename__: _events,
    JourneyInstance.__tablename__: lambda p: JourneyInstance.profile_id.in_(p.profile_ids),
    Timer.__tablename__: _of_trips,
    Delivery.__tablename__: lambda p: Delivery.profile_id.in_(p.profile_ids),
    DeliveryEvent.__tablename__: _of_deliveries,
    InboundMessage.__tablename__: _inbound,
    ProfileAudit.__tablename__: lambda p: ProfileAudit.profile_id.in_(p.profile_ids),
    ErasedIdentity.__tablename__: lambda p: ErasedIdentity.profile_id.in_(p.profile_ids),
    ComputedTrait.__tablename__: lambda p: ComputedTrait.profile_id.in_(p.profile_ids),
    TraitEvent.__tablename__: lambda p: TraitEvent.profile_id.in_(p.profile_ids),
    Membership.__tablename__: lambda p: Membership.profile_id.in_(p.profile_ids),
    # Which broadcasts reached them, or skipped them and why (an erased person's pending turn
    # is skipped at send time: the sending finds them erased).
    Recipient.__tablename__: lambda p: Recipient.profile_id.in_(p.profile_ids),
}

NOT_PERSONAL = {
    "journey_versions": "the marketers' journey files, the same for everybody",
    "alembic_version": "the schema's revision",
    "segment_versions": "the marketers' segment files, the same for everybody",
    "broadcasts": "the marketers' broadcast files and their progress, the same for everybody",
    "split_winners": "which arm of a journey's A/B split won, counted over everybody",
    "ad_spend": "what the ad platform reports spent per ad set and day, over everybody",
    "spend_reads": "how reading the ad platform's spend goes, per ad set",
}


def _plain(value: object) -> str:
    """What `json.dumps` cannot write itself: the times (timezone-aware, ISO 8601)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def to_json(document: dict[str, Any], indent: int | None = None) -> str:
    """One pass of the standard encoder: FastAPI's generic one walks every value first, and
    took longer than the queries on a person with 10,000 events."""
    return json.dumps(document, default=_plain, ensure_ascii=False, indent=indent)


def export(session: Session, profile: Profile) -> dict[str, Any]:
    """Every row of every table that holds something about the person, all columns, in key
    order (oldest first), as one document for `to_json`."""
    who = person(session, profile)
    tables: dict[str, list[dict[str, Any]]] = {}
    for name, where in HOLDINGS.items():
        table = Base.metadata.tables[name]
        order = list(table.primary_key.columns)
        result = session.execute(select(table).where(where(who)).order_by(*order))
        keys = list(result.keys())
        tables[name] = [dict(zip(keys, row, strict=True)) for row in result]
    return {
        "profile_id": profile.id,
        "exported_at": clock.now(),
        "identities": [{"kind": kind, "value": value} for kind, value in who.identities],
        "tables": tables,
    }
