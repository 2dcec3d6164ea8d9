"""Provider calls made concurrently: one event loop per worker process, slots per channel.

A blocking call per worker thread made the thread count the concurrency: each thread paid the
provider's latency once per message. Now a worker thread claims a batch, hands its messages to
this process's sending loop and waits for their answers; the loop keeps up to
CARILLON_SEND_CONCURRENCY calls in flight per channel. Each channel has its own slots, and its
own connections (an adapter with `send_async` keeps one pool, sized to those slots; any other
adapter runs on a thread pool of the channel's own), so a provider that hangs holds only its
own slots and never another channel's.

A call is one provider request: one message's, or, for an adapter with a batch hook
(`channels.base.BatchChannel`), those of the batch that share its batch key (one audience, one
e-mail body), so the provider's per-request limits and the rate limit count what it counts.

Every wait is bounded, so a batch always comes back:

- a slot: at most `slot_wait_seconds`, else the message is handed back (`PutOff`, no attempt
  counted), as a rate-limit turn too far off is;
- the rate-limit turn: the limiter's own bound (CARILLON_RATE_LIMIT_MAX_WAIT_SECONDS), taken
  once the slot is held, so tokens are spent at the pace calls really start;
  a turn gone stale is taken again within that same bound;
- the call: the provider timeout plus `CALL_MARGIN_SECONDS`; past that it is a transient
  failure, as an adapter's own timeout is.

A rate-limit turn holds only if the call leaves on time. The bucket issues turns at least
one interval apart, at `HEADROOM` under the limit; a call that leaves within `late_tolerance`
of its turn therefore never makes the provider count more than the limit in any window, while
one held up longer (a process the machine did not schedule, a loop held up, a connection to
wait for) would leave in the same window as later turns. So each call checks its turn at the
last moment before its bytes leave (`channels.base.departure_gate`, awaited by the adapter's
HTTP client; before the adapter is called for any other): a turn gone stale is not used, and
another is taken. A turn is judged against the moment the limiter was asked, and waited for
from the moment it answered, so a stall on the way to Redis or back is counted as lateness
and never as an early start.

An adapter that raises (it should not) leaves its row `sending`: the sweeper then applies the
ambiguous-window policy, as it did when the raise failed the whole job.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections.abc import Awaitable, Hashable, Mapping, Sequence
from concurrent.futures import CancelledError, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from app.delivery import rate_limit
from app.ops import logs
from app.ops.instruments import observe_provider_call
from app.settings import Settings
from channels.base import (
    AsyncBatchChannel,
    AsyncChannel,
    BatchChannel,
    Channel,
    Message,
    NotNow,
    Outcome,
    SendResult,
    departure_gate,
)

log = logging.getLogger(__name__)

# Past the provider timeout, how long a call may still run before it is cut: the adapter's own
# client timeout should answer first, this is the backstop.
CALL_MARGIN_SECONDS = 5.0
# How long closing waits for the loop to release the adapters' connections.
CLOSE_SECONDS = 5.0


@dataclass(frozen=True)
class PutOff:
    """No call was made: no slot or no rate-limit turn within its bound. The row goes back to
    pending, due again in `seconds`, with its attempt given back."""

    seconds: float
    reason: str


# What a message came back with: the provider's answer, a put-off, or None when the adapter
# raised (the row is left to the sweeper).
Answer = SendResult | PutOff | None


def call_timeout_seconds(settings: Settings) -> float:
    return settings.provider_timeout_seconds + CALL_MARGIN_SECONDS


def slot_wait_seconds(settings: Settings) -> float:
    """How long a claimed message may wait for a slot: no longer than a call may last, and
    within the time the sweeper leaves a row `sending` once its rate-limit wait and its call
    are counted (else a row still waiting here could be judged abandoned)."""
    spare = (
        settings.sending_timeout_seconds
        - call_timeout_seconds(settings)
        - settings.rate_limit_max_wait_seconds
    )
    return max(0.1, min(settings.provider_timeout_seconds, spare / 2))


def late_tolerance(period_seconds: float) -> float:
    """How late after its turn a call may still leave. Turns come at least `1/r` apart at
    `r = (1 - HEADROOM) * N / period`, so calls each within `t` of their turn put at most
    `r * (period + t)` turns' calls in one window: under N for any `t < period * HEADROOM /
    (1 - HEADROOM)`. A fifth of that: the rest covers the way to the provider (up to 0.1 s
    measured on a machine loaded past its cores, at 20/s; with a third, 20 calls then reached
    the provider in some second, at the limit)."""
    headroom = rate_limit.HEADROOM
    return period_seconds * headroom / (1 - headroom) / 5


@dataclass
class _Turn:
    """One call's rate-limit turn on the monotonic clock: it may leave from `go` (the turn
    counted from when the limiter answered) until `earliest + tolerance` (counted from when
    it was asked, the earliest the turn can have been). Every turn it takes, the first and
    those taken again, must come before `deadline`."""

    channel: str
    tolerance: float
    deadline: float
    earliest: float = 0.0
    go: float = 0.0
    held: bool = False
    taken: int = 0

    def fresh(self) -> bool:
        return self.held and time.monotonic() - self.earliest <= self.tolerance


def _reserve(limiter: rate_limit.RateLimiter, turn: _Turn) -> tuple[bool, float]:
    """Ask the bucket for a turn (blocking: on the limiter's threads); on success `turn` holds
    it. Answers as `RateLimiter.reserve`, within what is left of the turn's bound."""
    asked = time.monotonic()
    granted, seconds = limiter.reserve(turn.channel, max(0.0, turn.deadline - asked))
    answered = time.monotonic()
    turn.taken += 1
    if granted:
        turn.earliest, turn.go, turn.held = asked + seconds, answered + seconds, True
    return granted, seconds


def _on_loop(channel: Channel, messages: Sequence[Message]) -> Awaitable[list[SendResult]] | None:
    """The call in the adapter's asynchronous form, awaited on the loop; None when it has
    none (the call then blocks one of the channel's threads)."""
    if len(messages) > 1:
        return channel.send_many_async(messages) if isinstance(channel, AsyncBatchChannel) else None
    return _listed(channel.send_async(messages[0])) if isinstance(channel, AsyncChannel) else None


async def _listed(call: Awaitable[SendResult]) -> list[SendResult]:
    return [await call]


def _send_if_fresh(
    channel: Channel, messages: Sequence[Message], turn: _Turn | None
) -> list[SendResult] | None:
    """On the channel's thread: the call, or None (no call) when the turn went stale."""
    if turn is not None and not turn.fresh():
        return None
    if isinstance(channel, BatchChannel) and len(messages) > 1:
        return channel.send_many(messages)
    return [channel.send(messages[0])]


class Sender:
    """The sending loop of one worker process, over one set of adapters."""

    def __init__(self, channels: Mapping[str, Channel], settings: Settings) -> None:
        self.channels = channels
        self.settings = settings
        self._concurrency = settings.send_concurrency
        self._slot_wait = slot_wait_seconds(settings)
        self._call_timeout = call_timeout_seconds(settings)
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._idle = threading.Condition()
        self._busy = 0  # batches being sent, from worker threads
        # Rate-limit turns ask Redis (a blocking client): off the loop, on threads of their own.
        self._limiter_pool = ThreadPoolExecutor(4, thread_name_prefix="carillon-send-limit")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="carillon-send-loop", daemon=True
        )
        self._thread.start()

    def send(
        self,
        messages: Sequence[Message],
        log_ids: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> list[Answer]:
        """Call the providers for `messages` concurrently; one answer per message, in order,
        each call's log lines under `log_ids[delivery_id]`. Called from worker threads;
        returns once every call has answered or been cut."""
        if not messages:
            return []
        with self._idle:
            self._busy += 1
        try:
            return self._send(messages, log_ids)
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    def _send(
        self, messages: Sequence[Message], log_ids: Mapping[str, Mapping[str, Any]] | None
    ) -> list[Answer]:
        # In a fresh context: the calls' log lines name their own delivery, not the job's.
        future = contextvars.Context().run(
            asyncio.run_coroutine_threadsafe, self._send_all(messages, log_ids or {}), self._loop
        )
        bound = self._bound()
        try:
            return future.result(timeout=bound)
        except FutureTimeout:
            # Every wait inside is bounded, so this is a bug or a loop starved of CPU; the rows
            # stay `sending` and the sweeper settles them.
            future.cancel()
            log.error("a batch of %d sends outlasted its %.0fs bound", len(messages), bound)
            return [None] * len(messages)
        except CancelledError:  # the worker is stopping: the sweeper settles these rows
            log.warning("a batch of %d sends was cut by the worker's shutdown", len(messages))
            return [None] * len(messages)

    def _bound(self) -> float:
        """The longest a batch can take: a slot, a rate-limit turn, the call, and a margin."""
        return (
            self._slot_wait
            + self.settings.rate_limit_max_wait_seconds
            + self._call_timeout
            + CALL_MARGIN_SECONDS
        )

    async def _send_all(
        self, messages: Sequence[Message], log_ids: Mapping[str, Mapping[str, Any]]
    ) -> list[Answer]:
        groups = self._calls(messages)
        answered = await asyncio.gather(*(self._send_call(call, log_ids) for call in groups))
        by_id = {
            m.delivery_id: a
            for call, answers in zip(groups, answered, strict=True)
            for m, a in zip(call, answers, strict=True)
        }
        return [by_id[m.delivery_id] for m in messages]

    def _calls(self, messages: Sequence[Message]) -> list[list[Message]]:
        """The provider calls `messages` need: one per message, except that a channel that
        batches takes the messages sharing a batch key together, up to its batch limit."""
        alone: list[list[Message]] = []
        together: dict[tuple[str, Hashable], list[list[Message]]] = {}
        for message in messages:
            channel = self.channels[message.channel]
            key: Hashable | None = None
            if isinstance(channel, BatchChannel | AsyncBatchChannel):
                key, limit = channel.batch_key(message), channel.batch_limit
            if key is None:
                alone.append([message])
                continue
            calls = together.setdefault((message.channel, key), [[]])
            if len(calls[-1]) >= limit:
                calls.append([])
            calls[-1].append(message)
        return alone + [call for calls in together.values() for call in calls]

    async def _send_call(
        self, messages: Sequence[Message], log_ids: Mapping[str, Mapping[str, Any]]
    ) -> list[Answer]:
        # A call for many deliveries logs under the first one's ids; the answers are each
        # logged under their own delivery's by the service.
        with logs.scope(**log_ids.get(messages[0].delivery_id, {})):
            return await self._send_scoped(messages)

    async def _send_scoped(self, messages: Sequence[Message]) -> list[Answer]:
        name = messages[0].channel
        slots = self._slots.setdefault(name, asyncio.Semaphore(self._concurrency))
        try:
            async with asyncio.timeout(self._slot_wait):
                await slots.acquire()
        except TimeoutError:
            reason = f"no send slot of {name} free within {self._slot_wait:g}s"
            return [PutOff(self._slot_wait, reason)] * len(messages)
        try:
            return list(await self._call(messages))
        except NotNow as exc:
            return [PutOff(exc.seconds, exc.reason)] * len(messages)
        except Exception:
            ids = ", ".join(m.delivery_id for m in messages)
            log.exception("deliveries %s: their adapter raised", ids)
            return [None] * len(messages)
        finally:
            slots.release()

    async def _depart(self, turn: _Turn | None) -> None:
        """Return once `turn` is fresh: at once if it is, else after waiting for a new one;
        raise NotNow when no turn is free within the bound."""
        if turn is None:
            return
        loop = asyncio.get_running_loop()
        while not turn.fresh():
            turn.held = False
            if turn.taken and time.monotonic() >= turn.deadline:  # stalls past the bound
                interval = rate_limit.limiter().interval(turn.channel)
                raise NotNow(
                    interval,
                    f"provider rate limit of {turn.channel}: no turn free, {turn.taken} missed",
                )
            granted, seconds = await loop.run_in_executor(
                self._limiter_pool, _reserve, rate_limit.limiter(), turn
            )
            if not granted:
                missed = f", {turn.taken - 1} missed" if turn.taken > 1 else ""
                raise NotNow(
                    seconds, f"provider rate limit of {turn.channel}: no turn free{missed}"
                )
            await asyncio.sleep(max(0.0, turn.go - time.monotonic()))

    def _turn(self, channel: str) -> _Turn | None:
        """A call's turn, none held yet; None when the channel is not rate limited."""
        limiter = rate_limit.limiter()
        if not limiter.limited(channel):
            return None
        tolerance = late_tolerance(limiter.limits[channel].period_seconds)
        return _Turn(channel, tolerance, time.monotonic() + limiter.max_wait)

    async def _call(self, messages: Sequence[Message]) -> list[SendResult]:
        """The adapter's call, on its turn: checked before the adapter is called, and again
        by the adapter as the bytes leave (`departure_gate`) or, for a blocking adapter, on
        its thread just before the call (a stale turn there comes back for a new one)."""
        channel = self.channels[messages[0].channel]
        turn = self._turn(messages[0].channel)
        await self._depart(turn)
        started = time.perf_counter()
        results: list[SendResult] | None = None
        called = True
        try:
            async with asyncio.timeout(self._call_timeout):
                call = _on_loop(channel, messages)
                if call is not None:
                    departure_gate.set(lambda: self._depart(turn))  # this task's own context
                    results = await call
                else:
                    results = await self._call_blocking(channel, messages, turn)
            if len(results) != len(messages):
                raise ValueError(f"{len(results)} results for {len(messages)} messages")
        except TimeoutError:
            failed = SendResult(
                Outcome.FAILED,
                error=f"no answer from the provider within {self._call_timeout:g}s",
                transient=True,
            )
            results = [failed] * len(messages)
        except NotNow:
            called = False  # the gate held it back: no call to observe
            raise
        except Exception:
            results = None
            raise
        finally:
            if called:
                seconds = time.perf_counter() - started
                for i, message in enumerate(messages):
                    observe_provider_call(message, results[i] if results else None, seconds)
        return results

    async def _call_blocking(
        self, channel: Channel, messages: Sequence[Message], turn: _Turn | None
    ) -> list[SendResult]:
        name = messages[0].channel
        pool = self._pools.get(name)
        if pool is None:
            pool = self._pools[name] = ThreadPoolExecutor(
                self._concurrency, thread_name_prefix=f"carillon-send-{name}"
            )
        loop = asyncio.get_running_loop()
        while True:
            results = await loop.run_in_executor(pool, _send_if_fresh, channel, messages, turn)
            if results is not None:
                return results
            await self._depart(turn)  # went stale on the way to the thread

    def close(self) -> None:
        """Stop the loop once the batches being sent have come back (each is bounded), so a
        rebuild never cuts another thread's calls: the async adapters' connections are released
        on it first, then the thread pools are let go (a call still hung in one is abandoned,
        not awaited)."""
        with self._idle:
            if not self._idle.wait_for(lambda: self._busy == 0, self._bound()):
                log.warning("closing the send loop with %d batch(es) still sending", self._busy)
        if not self._loop.is_closed() and self._thread.is_alive():
            future = asyncio.run_coroutine_threadsafe(self._release(), self._loop)
            try:
                future.result(timeout=CLOSE_SECONDS)
            except Exception:
                log.warning("the send loop did not release its connections in time")
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(CLOSE_SECONDS)
        for pool in (*self._pools.values(), self._limiter_pool):
            pool.shutdown(wait=False, cancel_futures=True)
        if not self._thread.is_alive():
            self._loop.close()

    async def _release(self) -> None:
        current = asyncio.current_task()
        for task in asyncio.all_tasks():
            if task is not current:
                task.cancel()
        for channel in self.channels.values():
            if isinstance(channel, AsyncChannel):
                await channel.aclose()
