"""The delivery jobs by name: one queue per channel, so a slow provider never holds up another.

Anyone may enqueue a send from here; only `app.delivery.tasks` (loaded by the workers) runs it.
"""

from __future__ import annotations

from app.queue import Job


def send_delivery(channel: str) -> Job:
    return Job(actor_name=f"delivery.send_{channel}", queue_name=channel)
