"""Point this process at a scratch engine before simulating a journey.

Kept apart from the simulator, which imports the queue: the broker is chosen when the first
job is declared, so this must run before that import for the in-process queue to be picked.
"""

from __future__ import annotations

import os
import tempfile

from app import migrate
from app.db import forget_engine
from app.settings import get_settings
from channels import registry


def isolate() -> None:
    """A scratch SQLite file, the in-process queue and dry-run channels, whatever the
    environment says: a simulation must never reach production data, Redis or a provider, so
    no channel keeps any of its own settings (credentials, senders, secrets)."""
    scratch = tempfile.mkdtemp(prefix="carillon-simulation-")
    os.environ["CARILLON_DATABASE_URL"] = f"sqlite:///{scratch}/simulation.db"
    os.environ.pop("CARILLON_REDIS_URL", None)
    for name in registry.variables():
        os.environ.pop(name, None)
    get_settings.cache_clear()
    forget_engine()
    migrate.upgrade()
