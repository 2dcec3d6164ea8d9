"""The stand-in for a channel without credentials.

The embedded default must run end to end on a laptop with no provider accounts: journeys fire,
deliveries are rendered and recorded, and the record says plainly that nothing left the
machine.
"""

from __future__ import annotations

from typing import Any

from channels.base import Message, Outcome, SendResult


class DryRun:
    def __init__(self, name: str) -> None:
        self.name = name

    def send(self, message: Message) -> SendResult:
        detail: dict[str, Any] = {
            "channel": self.name,
            "delivery_id": message.delivery_id,
            "journey_id": message.journey_id,
            "recipient": {
                "profile_id": message.recipient.profile_id,
                "email": message.recipient.email,
                "phone": message.recipient.phone,
            },
            "content": dict(message.content),
        }
        return SendResult(Outcome.DRY_RUN, detail=detail)

    def __repr__(self) -> str:
        return f"DryRun({self.name!r})"
