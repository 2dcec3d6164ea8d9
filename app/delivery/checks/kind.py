"""Whether a delivery is transactional: what the person asked for (a receipt, a code) rather
than marketing. Quiet hours, frequency caps and, where the channel's law allows, the marketing
opt-out do not hold it back.

A send through `POST /v1/messages` has no trip and is always transactional; a broadcast's
message has no trip either and is always marketing; a journey's message is what its journey's
`kind` says, read from the version the trip started on.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.broadcasts.source import is_broadcast
from app.delivery.models import Delivery
from app.journeys import catalog


def is_transactional(session: Session, delivery: Delivery) -> bool:
    if delivery.instance_id is None:
        return not is_broadcast(delivery.journey_id)
    return catalog.journey_of_instance(session, delivery.instance_id).kind == "transactional"
