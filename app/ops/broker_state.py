"""What the broker holds per queue: ready, delayed, in flight, oldest ready, dead-lettered.

Read-only, and never a source of truth (the database is): a broker restart loses these numbers
and the sweeper re-enqueues the work. They answer "are the workers keeping up?".

Redis (dramatiq's layout, namespace `carillon`, see dramatiq's `redis/dispatch.lua`):
- `carillon:<q>` is the list of ready message ids; `carillon:<q>.msgs` the hash of every message
  not yet acknowledged, so in flight = HLEN(.msgs) - LLEN(list);
- `carillon:<q>.DQ.msgs` holds delayed messages (retry back-offs), fetched or not;
- `carillon:<q>.XQ` is the sorted set of dead-lettered messages (jobs out of retries);
- `carillon:__heartbeats__` scores each worker by its last heartbeat.

In-process (StubBroker): one `queue.Queue` per queue and per delay queue; a message fetched by
a worker leaves the queue but stays counted in `unfinished_tasks` until acknowledged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import dramatiq
from dramatiq.brokers.redis import DEFAULT_HEARTBEAT_TIMEOUT, RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import dq_name, xq_name
from dramatiq.message import Message


@dataclass(frozen=True)
class BrokerQueue:
    ready: int
    delayed: int
    in_flight: int
    oldest_ready_age_seconds: float | None
    dead_lettered: int


@dataclass(frozen=True)
class BrokerInfo:
    kind: str  # "redis" | "in-process"
    reachable: bool
    error: str | None
    # Redis only: workers whose heartbeat is recent; None where the broker cannot tell.
    workers_online: int | None
    queues: dict[str, BrokerQueue]


def _age(raw: bytes | str | None, now_ms: float) -> float | None:
    if raw is None:
        return None
    data = raw.encode() if isinstance(raw, str) else raw
    message = Message.decode(data)
    return max(0.0, (now_ms - message.message_timestamp) / 1000)


def _redis(broker: RedisBroker, names: list[str]) -> BrokerInfo:
    client: Any = broker.client
    ns = broker.namespace
    now_ms = time.time() * 1000
    pipe = client.pipeline(transaction=False)
    for name in names:
        key = f"{ns}:{name}"
        pipe.llen(key)
        pipe.hlen(f"{key}.msgs")
        pipe.hlen(f"{ns}:{dq_name(name)}.msgs")
        pipe.zcard(f"{ns}:{xq_name(name)}")
        pipe.lindex(key, 0)
    pipe.zcount(f"{ns}:__heartbeats__", now_ms - DEFAULT_HEARTBEAT_TIMEOUT, "+inf")
    results = pipe.execute()
    queues: dict[str, BrokerQueue] = {}
    for index, name in enumerate(names):
        ready, held, delayed, dead, first = results[index * 5 : index * 5 + 5]
        oldest = None
        if first is not None:
            oldest = _age(client.hget(f"{ns}:{name}.msgs", first), now_ms)
        queues[name] = BrokerQueue(
            ready=int(ready),
            delayed=int(delayed),
            in_flight=max(0, int(held) - int(ready)),
            oldest_ready_age_seconds=oldest,
            dead_lettered=int(dead),
        )
    return BrokerInfo("redis", True, None, int(results[-1]), queues)


def _stub(broker: StubBroker, names: list[str]) -> BrokerInfo:
    now_ms = time.time() * 1000
    queues: dict[str, BrokerQueue] = {}
    for name in names:
        ready_q = broker.queues.get(name)
        delay_q = broker.queues.get(dq_name(name))
        ready = in_flight = delayed = 0
        oldest = None
        if ready_q is not None:
            with ready_q.mutex:
                ready = len(ready_q.queue)
                in_flight = max(0, ready_q.unfinished_tasks - ready)
                first = ready_q.queue[0] if ready_q.queue else None
            oldest = _age(first, now_ms)
        if delay_q is not None:
            with delay_q.mutex:
                delayed = delay_q.unfinished_tasks
        queues[name] = BrokerQueue(
            ready=ready,
            delayed=delayed,
            in_flight=in_flight,
            oldest_ready_age_seconds=oldest,
            dead_lettered=len(broker.dead_letters_by_queue.get(name, ())),
        )
    return BrokerInfo("in-process", True, None, None, queues)


def inspect(broker: dramatiq.Broker, names: list[str]) -> BrokerInfo:
    """Counts for `names`; an unreachable broker gives `reachable=False` and the reason."""
    if isinstance(broker, RedisBroker):
        try:
            return _redis(broker, names)
        except Exception as exc:  # ops must still see the database half of the picture
            return BrokerInfo("redis", False, f"{type(exc).__name__}: {exc}", None, {})
    if isinstance(broker, StubBroker):
        return _stub(broker, names)
    return BrokerInfo(type(broker).__name__, True, "queue figures not supported", None, {})


def ping(broker: dramatiq.Broker) -> None:
    """Raise if the broker cannot be reached (the in-process queue always can)."""
    if isinstance(broker, RedisBroker):
        broker.client.ping()
