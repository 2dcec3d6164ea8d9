"""Every queue job, for workers to import (`dramatiq app.tasks`)."""

from app.delivery import tasks as delivery_tasks
from app.delivery.shutdown import CloseChannels
from app.events import tasks as event_tasks
from app.ops import logs, worker_metrics
from app.ops.instruments import JobMetrics
from app.queue import get_broker

broker = get_broker()
broker.add_middleware(JobMetrics())
broker.add_middleware(CloseChannels())
if worker_metrics.wanted():  # `carillon worker --metrics-port`
    from dramatiq.middleware.prometheus import Prometheus

    broker.add_middleware(Prometheus())
# dramatiq's worker processes set up their own logging; follow CARILLON_LOG_FORMAT if set.
logs.adopt_handlers()

__all__ = ["broker", "delivery_tasks", "event_tasks"]
