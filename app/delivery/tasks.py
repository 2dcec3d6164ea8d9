"""Delivery jobs, run by the workers (named in `app.delivery.jobs`)."""

from __future__ import annotations

from typing import Any

import dramatiq

from app.delivery import service
from app.delivery.jobs import send_delivery
from app.ops.context import delivery_scope
from app.queue import actor
from channels import registry


def _job(channel: str) -> dramatiq.Actor[Any, Any]:
    @actor(send_delivery(channel))
    def send(delivery_id: int) -> None:
        with delivery_scope(delivery_id):  # every log line of this job names its delivery
            service.deliver_batch(delivery_id, channel)  # and due rows of its channel with it

    return send  # type: ignore[no-any-return]


SEND_JOBS = {channel: _job(channel) for channel in registry.names()}


def send_job(channel: str) -> dramatiq.Actor[Any, Any]:
    return SEND_JOBS[channel]
