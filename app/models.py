"""Imports every table so `Base.metadata` is complete (Alembic, test setup)."""

from sqlalchemy import text

from app.analytics.models import AdSpend, SpendRead
from app.broadcasts.models import Broadcast, Recipient
from app.db import Base, get_engine
from app.delivery.models import Delivery, DeliveryEvent
from app.events.models import Event
from app.journeys.models import JourneyInstance, JourneyVersion, Timer
from app.profiles.models import ErasedIdentity, Identity, Profile, ProfileAudit, Trait
from app.segments.models import ComputedTrait, Membership, SegmentVersion, TraitEvent
from app.webhooks.models import InboundMessage

__all__ = [
    "AdSpend",
    "Base",
    "Broadcast",
    "ComputedTrait",
    "Delivery",
    "DeliveryEvent",
    "ErasedIdentity",
    "Event",
    "Identity",
    "InboundMessage",
    "JourneyInstance",
    "JourneyVersion",
    "Membership",
    "Profile",
    "ProfileAudit",
    "Recipient",
    "SegmentVersion",
    "SpendRead",
    "Timer",
    "Trait",
    "TraitEvent",
    "reset_all",
]


def reset_all() -> None:
    """Delete every row of every table: between simulated scenarios, and between tests. Here,
    where every table is known."""
    engine = get_engine()
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))
