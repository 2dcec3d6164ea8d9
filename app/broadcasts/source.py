"""How a broadcast's deliveries are named: `journey_id` is `broadcast:<id>` (never a journey
id, which has no colon), so reports group them per broadcast and the send-time checks know
them as marketing even though they belong to no trip."""

from __future__ import annotations

PREFIX = "broadcast:"


def source_of(broadcast_id: str) -> str:
    return f"{PREFIX}{broadcast_id}"


def is_broadcast(journey_id: str) -> bool:
    return journey_id.startswith(PREFIX)
