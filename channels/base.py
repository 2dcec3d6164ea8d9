"""The channel plugin contract: the adapter protocol, and the spec that tells the rest of
Carillon everything it needs to know about a channel.

An adapter receives a fully rendered `Message` and returns a `SendResult`; it never touches
the database, the queue or the clock. It may keep connections open between sends (one pool
per worker process); `close` releases them when the worker stops. Delivery policy (consent,
caps, retries) lives in `app.delivery` and asks the channel's `ChannelSpec` instead of testing
`channel == "sms"`, so a channel is one package under `channels/<name>/`, found through the
`carillon.channels` entry points (see `channels.registry`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:  # the settings import the channel registry's names at start-up
    from fastapi import APIRouter
    from pydantic_settings import BaseSettings

    from app.settings import QuietHours, Settings


class Outcome(StrEnum):
    SENT = "sent"
    DRY_RUN = "dry_run"
    FAILED = "failed"


@dataclass(frozen=True)
class Feedback:
    """What a provider told us about the person, beyond this one message: a consent state of
    this channel, and/or traits. The adapter only reports it; the delivery service writes it
    to the profile, so the next send is suppressed before any provider call. `kind` names it
    in the delivery's history."""

    kind: str
    consent: str | None = None
    traits: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Recipient:
    profile_id: str
    email: str | None = None
    phone: str | None = None


@dataclass(frozen=True)
class Message:
    """A rendered message. `content` keys depend on the channel:

    - email: subject, html, text
    - sms: text
    - meta_audience: audience_id, and optionally operation ("add", the default, or "remove")
    """

    delivery_id: str
    channel: str
    recipient: Recipient
    content: dict[str, Any]
    journey_id: str | None = None


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    provider_message_id: str | None = None
    # The provider's own words, kept verbatim so ops can see why a message was not sent.
    error: str | None = None
    status_code: int | None = None
    # True when retrying may succeed (timeouts, 429, 5xx); False for permanent refusals.
    transient: bool = False
    retry_after_seconds: float | None = None
    # What a dry run would have sent, for the record.
    detail: dict[str, Any] = field(default_factory=dict)
    feedback: tuple[Feedback, ...] = ()


class Channel(Protocol):
    name: str

    def send(self, message: Message) -> SendResult: ...

    def close(self) -> None:
        """Release what `send` keeps open (pooled connections); called once, at shutdown."""


@runtime_checkable
class AsyncChannel(Protocol):
    """An adapter that can also send with asynchronous I/O: the workers then call it on their
    sending loop, many calls in flight over one connection pool, instead of one thread per
    call. The same contract as `send` (never raises, never touches the database)."""

    async def send_async(self, message: Message) -> SendResult: ...

    async def aclose(self) -> None:
        """Release what `send_async` opened; a later `send_async` opens it again."""


@runtime_checkable
class BatchChannel(Protocol):
    """An adapter whose provider takes many messages in one request (an audience upload of
    many rows, an e-mail with many personalizations): the sending loop then makes one call,
    under one rate-limit turn (the provider counts requests), for the messages of a claimed
    batch that share a `batch_key`, at most `batch_limit` of them. The checks (consent, caps,
    quiet hours) have passed for each message before; each gets its own result, in order.

    `batch_key` is None for a message that must go alone; messages with equal keys go
    together. A group of one is sent with `send` / `send_async`, as if no batch hook existed.
    `send_many` blocks (run on the channel's threads); an adapter with asynchronous I/O offers
    `send_many_async` instead (`AsyncBatchChannel`). The same contract as `send`: never raises,
    never touches the database."""

    batch_limit: int

    def batch_key(self, message: Message) -> Hashable | None: ...

    def send_many(self, messages: Sequence[Message]) -> list[SendResult]: ...


@runtime_checkable
class AsyncBatchChannel(Protocol):
    """`BatchChannel` on the workers' sending loop."""

    batch_limit: int

    def batch_key(self, message: Message) -> Hashable | None: ...

    async def send_many_async(self, messages: Sequence[Message]) -> list[SendResult]: ...


class NotNow(Exception):
    """Raised by a departure gate: the call was not made, so the adapter lets it through; the
    sending loop puts the message off `seconds`, no attempt counted."""

    def __init__(self, seconds: float, reason: str) -> None:
        super().__init__(reason)
        self.seconds, self.reason = seconds, reason


# The sending loop's say over the last moment before a request's bytes leave. A provider
# counts arrivals, and anything between a rate-limit turn and the call (a connection to wait
# for, a process the machine did not schedule) would bunch calls it counts; so an adapter with
# `send_async` awaits `before_departure()` there, the very last thing before writing (with
# aiohttp: `channels._async_http.Pool` does, once its connection is in hand). It returns at
# once when no gate is set, may wait, and may raise NotNow.
departure_gate: ContextVar[Callable[[], Awaitable[None]] | None] = ContextVar(
    "departure_gate", default=None
)


async def before_departure() -> None:
    gate = departure_gate.get()
    if gate is not None:
        await gate()


class ContentRefused(ValueError):
    """Finishing a channel's content found it unsendable (too long, too much CSS): the
    delivery fails with this reason and nothing is sent."""


@dataclass(frozen=True)
class Consent:
    """How a person's consent for a channel is kept: one trait, its states, and which of them
    allow sending. `refusal` says why a message must not go out, or None when it may.

    `transactional` is the rule for a message the person asked for (a receipt, a password
    reset: a transactional journey or `POST /v1/messages`) where the law exempts it from the
    marketing opt-out; None: the same rule as marketing. It never lets a message through to an
    address that bounced hard or a number that replied STOP."""

    kind: str  # shared by channels that reach people the same way (`ads`)
    trait: str
    states: frozenset[str]
    refusal: Callable[[Mapping[str, Any]], str | None]
    withdrawn: str  # the state a person's own "no" sets (an unsubscribe link, a STOP)
    transactional: Callable[[Mapping[str, Any]], str | None] | None = None

    def refusal_of(self, traits: Mapping[str, Any], *, transactional: bool) -> str | None:
        """Why a message must not go out to this person, by the kind of message it is."""
        rule = self.transactional if transactional and self.transactional else self.refusal
        return rule(traits)


@dataclass(frozen=True)
class Refusal:
    """Finished content over a limit its options set: which key, why, and what to do."""

    key: str
    reason: str
    hint: str


@dataclass(frozen=True)
class Option:
    """A per-variant option: `parse` returns the value or raises ValueError with the reason;
    `hint` shows how to write it."""

    parse: Callable[[Any], Any]
    hint: str
    schema: Mapping[str, Any] = field(default_factory=dict)  # its JSON Schema, for editors


@dataclass(frozen=True)
class DaySpend:
    """What the provider reports spent on one of its objects (an ad set) on one day, in the
    ad account's currency."""

    day: date
    amount: float
    currency: str


class SpendUnreadable(Exception):
    """The provider did not give the spend: its own words, whether asking again later may work
    (throttling, an outage) and when it says to, in seconds."""

    def __init__(self, reason: str, *, transient: bool, retry_after_seconds: float | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient
        self.retry_after_seconds = retry_after_seconds


@dataclass(frozen=True)
class SpendSource:
    """A channel whose cost is what the ad platform reports spent, read after the fact, rather
    than a price per unit: paid social pays for impressions the audience gets, not for adding
    people to it.

    - `key`: the content key naming what the spend buys reach to (an audience); the people a
      journey adds under each value share that value's spend.
    - `objects`: per value of `key`, the provider's objects whose spend counts (ad sets), as
      configured; empty when none is.
    - `read`: one object's spend per day from `since` to `until` (both included); raises
      `SpendUnreadable`. It blocks on the network and never touches the database.
    - `setting`: the variable that configures `objects`, for the notes ops read.
    """

    key: str
    objects: Callable[[], Mapping[str, tuple[str, ...]]]
    read: Callable[[str, date, date], list[DaySpend]]
    setting: str


@dataclass(frozen=True)
class ChannelSpec:
    """What Carillon knows about a channel, declared by the channel itself.

    - `address`: the contact the message goes to (`email`, `phone`), or None when any known
      identity will do (an audience matches on all of them).
    - `finish`: what rendering adds once the templates are filled (an e-mail's inlined CSS and
      text part); raises `ContentRefused`.
    - `options`: what a message's variant may add for this channel (an SMS's `max_segments`),
      each parsed when the journey loads; `limit` checks finished content against them and
      returns a `Refusal` (checked at load on literal text, at render otherwise).
    - `describe`: one line about finished content for `carillon templates preview` (an SMS's
      encoding and segments).
    - `undo`: the content of the message that takes a send back (an audience removal); a
      channel with one accepts `remove_on_exit: true` on its send steps.
    - `resend_when_abandoned`: a send whose worker died mid-call may be made again, because
      the provider treats a repeat as a no-op; else the row becomes `unknown` for a person.
    - `rate_limit_account`: whose budget a call spends (None: no credentials, a dry run).
    - `feedback_kinds`: the delivery-history kinds provider webhooks record, by KPI
      (`delivered`, `opened`, `clicked`).
    """

    name: str
    provider: str
    description: str
    address: Literal["email", "phone"] | None
    required_content: frozenset[str]
    consent: Consent
    credentials: Callable[[Settings], bool]
    build: Callable[[Settings], Channel]
    rate_limit_account: Callable[[Settings], str | None]
    optional_content: frozenset[str] = frozenset()
    generated_content: frozenset[str] = frozenset()
    finish: Callable[[dict[str, str]], dict[str, str]] | None = None
    options: Mapping[str, Option] = field(default_factory=dict)
    limit: Callable[[Mapping[str, str], Mapping[str, Any]], Refusal | None] | None = None
    describe: Callable[[Mapping[str, str]], str] | None = None
    undo: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None
    # JSON Schema of each content key (a description, a pattern), for editors.
    content_schema: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    resend_when_abandoned: bool = False
    cost_unit: str = "message"
    # How long after a message a conversion's revenue is credited to it (last touch), unless
    # CARILLON_ATTRIBUTION_WINDOWS says otherwise: a person acts on an e-mail days later, on
    # an SMS the same day.
    attribution_window: timedelta = timedelta(days=1)
    feedback_kinds: Mapping[str, str] = field(default_factory=dict)
    feedback_sources: tuple[str, ...] = ()
    routers: Callable[[], tuple[APIRouter, ...]] = lambda: ()
    # The channel's own settings (a pydantic-settings model read from the environment, prefix
    # CARILLON_; `channels.settings.read` reads it): checked by every process at start, listed
    # with the others in README. Channels of one provider account extend one model.
    settings: type[BaseSettings] | None = None
    # Defaults for the per-channel settings when they do not name this channel:
    # CARILLON_QUIET_HOURS unset (a marketing message waits out this window, local time),
    # CARILLON_COST_PER_MESSAGE or CARILLON_COST_PER_THOUSAND (the price of one `cost_unit`;
    # None: unknown) and CARILLON_DELIVERY_ATTEMPTS_PER_CHANNEL (None:
    # CARILLON_DELIVERY_MAX_ATTEMPTS).
    quiet_hours: QuietHours | None = None
    cost: float | None = None
    # How many `cost_unit`s a rendered message is billed as (an SMS's segments, as Twilio
    # counts them); None: one per message.
    units: Callable[[Mapping[str, Any]], int] | None = None
    # Where its cost comes from when the provider reports spend instead (ad insights); used
    # once its objects are configured, in place of a price.
    spend: SpendSource | None = None
    attempts: int | None = None
    # Its messages carry Carillon's one-click unsubscribe link (RFC 8058).
    unsubscribe_link: bool = False
    # Where it is listed among the channels (ops tables, the JSON Schema, error hints).
    position: int = 100
