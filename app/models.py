"""Imports every table so `Base.metadata` is complete (Alembic, test setup)."""

from app.db import Base
from app.delivery.models import Delivery, DeliveryEvent
from app.events.models import Event
from app.journeys.models import JourneyInstance, JourneyVersion, Timer
from app.profiles.models import Identity, Profile, Trait
from app.webhooks.models import InboundMessage

__all__ = [
    "Base",
    "Delivery",
    "DeliveryEvent",
    "Event",
    "Identity",
    "InboundMessage",
    "JourneyInstance",
    "JourneyVersion",
    "Profile",
    "Timer",
    "Trait",
]
