"""Closing the channel adapters when a worker stops.

An adapter keeps its provider connections open between sends (one pool per process). A stopped
worker closes them rather than leaving the provider to time them out, which also ends the
threads some clients keep for their pools.
"""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.middleware import Middleware

from app.delivery.service import close_channels


class CloseChannels(Middleware):
    """dramatiq middleware: once the worker's threads have stopped, no send can still be using
    an adapter, so they are closed then (`carillon worker` and the embedded `serve` alike)."""

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        close_channels()
