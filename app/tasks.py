"""Every queue job, for workers to import (`dramatiq app.tasks`)."""

from app.delivery import tasks as delivery_tasks
from app.events import tasks as event_tasks
from app.queue import get_broker

broker = get_broker()

__all__ = ["broker", "delivery_tasks", "event_tasks"]
