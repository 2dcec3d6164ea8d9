"""The stand-in for a channel without credentials.

The embedded default must run end to end on a laptop with no provider accounts: journeys fire,
deliveries are rendered and recorded, and the record says plainly that nothing left the
machine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from channels.base import Message, Outcome, SendResult

# The address each channel would have used; a channel not listed here would use both.
_ADDRESS_FIELDS: dict[str, tuple[str, ...]] = {"email": ("email",), "sms": ("phone",)}


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

    def close(self) -> None:
        """Nothing is held open."""

    def __repr__(self) -> str:
        return f"DryRun({self.name!r})"


def dry_run_note(detail: Mapping[str, Any]) -> str:
    """One line for the delivery record: nothing was sent, why, and where it would have gone.

    The rendered message itself is already on the delivery row (`content`)."""
    channel = str(detail.get("channel") or "?")
    recipient = detail.get("recipient") or {}
    fields = _ADDRESS_FIELDS.get(channel, ("email", "phone"))
    addresses = [str(recipient[f]) for f in fields if recipient.get(f)]
    target = ", ".join(addresses) or "no address on file"
    return (
        f"dry run: channel {channel} has no provider credentials configured, nothing was sent "
        f"(would have gone to {target})"
    )
