"""What the tests share: the database and queue, settings through the environment, people and
events, journeys and deliveries, and the providers' signing schemes.

The one module test files import helpers from; conftest files hold only fixtures. It is imported
after tests/conftest.py has set the environment the app modules read."""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import shutil
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import dramatiq
import pytest
import uvicorn
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import func, select, text

from app import clock
from app.db import get_engine, is_postgres, session_scope
from app.delivery import history, service
from app.delivery.models import Delivery, DeliveryEvent
from app.events import routing
from app.events.models import Event
from app.events.schemas import SegmentEvent
from app.events.service import store
from app.journeys import catalog
from app.journeys.language import journey_model
from app.journeys.models import JourneyInstance, Timer
from app.journeys.timers import fire_due
from app.migrate import upgrade
from app.models import reset_all
from app.ops import throttle
from app.profiles.models import Identity, Profile, Trait
from app.profiles.view import view
from app.segments import catalog as segment_catalog
from app.settings import get_settings
from app.tasks import broker
from app.yamlfiles import FileInvalid, validate_yaml
from channels import registry
from tests.processes import REPO, WRITE_KEY
from tests.providers.meta import MetaGraphServer
from tests.providers.sendgrid import SendGridServer
from tests.providers.server import ProviderServer, RecordedRequest
from tests.providers.twilio import TwilioServer


def basic(key: str = WRITE_KEY) -> dict[str, str]:
    token = base64.b64encode(f"{key}:".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def gzipped(body: dict[str, Any]) -> bytes:
    return gzip.compress(json.dumps(body).encode())


def event_count() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(Event)) or 0


def track(
    user: str,
    name: str,
    properties: dict[str, Any] | None = None,
    timestamp: str = "2026-11-02T09:00:00Z",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": user,
        "event": name,
        "properties": properties or {},
        "timestamp": timestamp,
        **extra,
    }


def identify(
    user: str, traits: dict[str, Any], timestamp: str = "2026-11-02T08:00:00Z", **extra: Any
) -> dict[str, Any]:
    return {"type": "identify", "userId": user, "traits": traits, "timestamp": timestamp, **extra}


def run_ab_test(
    directory: Path,
    manual: clock.ManualClock,
    people: Iterable[str],
    buyers: Iterable[str],
    *,
    send: bool = False,
) -> None:
    """Load the documented A/B test, put `people` through its split (the split waits for
    10:00: run on the suite's 09:00 manual clock) and have `buyers` reach its goal. With
    `send`, people have an e-mail address and their messages go out before the buyers buy (half
    an hour later), so the revenue is credited to the messages."""
    people = list(people)
    shutil.copy(AB_TEST, directory / AB_TEST.name)
    catalog.sync_directory(directory)
    at = manual.now().isoformat()
    if send:
        route(*(identify(user, {"email": f"{user}@example.com"}, at) for user in people))
    route(*(track(user, "Cart Abandoned", {"total": 30}, at) for user in people))
    manual.advance(timedelta(hours=1))
    fire_due(500)
    if send:
        for pending in deliveries():
            if pending.status == "pending":
                deliver(pending.id)
        manual.advance(timedelta(minutes=30))
    at = manual.now().isoformat()
    route(*(track(user, "Order Completed", {"total": 30}, at) for user in buyers))


# A 50/50 split that decides itself on conversions; MIN is its minimum per arm.
AUTO_WINNER = """
id: ab-auto
name: Automatic winner
trigger: {event: Cart Abandoned}
goal: {event: Order Completed, within: 7d}
steps:
  - split:
      - {weight: 50, steps: [wait: 1d]}
      - {weight: 50, steps: [wait: 1d]}
    winner: {metric: conversion, at: "p<0.05", min_per_arm: MIN}
"""


def users_by_arm() -> dict[str, list[str]]:
    """The user ids of each split arm's trips."""
    with session_scope() as session:
        users = {
            i.profile_id: i.value
            for i in session.scalars(select(Identity).where(Identity.kind == "user_id"))
        }
        found: dict[str, list[str]] = {}
        for trip in session.scalars(select(JourneyInstance).order_by(JourneyInstance.id)):
            found.setdefault(trip.arm or "", []).append(users[trip.profile_id])
        return found


class _Server(uvicorn.Server):
    """uvicorn with an event set once it listens (or once it gave up trying)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[Any] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve `app` with uvicorn in a thread on a free port; yields its base URL."""
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None))

    def run() -> None:
        try:
            server.run()
        finally:  # a failed start must not leave the caller waiting
            server.ready.set()

    thread = threading.Thread(target=run, name="carillon-api", daemon=True)
    thread.start()
    assert server.ready.wait(timeout=30), "uvicorn did not start within 30 s"
    assert server.started, "uvicorn failed to start (see the log above)"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        assert not thread.is_alive(), "uvicorn did not shut down within 30 s"


# ----------------------------------------------------------------- the database and the queue
# Imported by tests/conftest.py once the environment is set, and by the folders whose tests
# need the database back after their conftest turned it off.

SHIPPED = REPO / "journeys"
# The documented A/B test: two e-mails against a 10 % holdout, goal `Order Completed`.
AB_TEST = REPO / "docs" / "examples" / "cart_winback.yaml"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
# The suite runs on PostgreSQL + Redis (the production roles) or on the embedded default.
PRODUCTION = get_settings().redis_url is not None and not get_settings().is_sqlite


def prepare_database() -> None:
    """The schema as `carillon db upgrade` makes it, on an empty database."""
    engine = get_engine()
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    upgrade()


@pytest.fixture(scope="session", autouse=True)
def schema() -> None:
    """The suite's database fixtures, used by tests/conftest.py and taken back by the folders
    whose conftest turned them off (pure tests) but whose tests need the database."""
    prepare_database()


@pytest.fixture(autouse=True)
def clean_state() -> Iterator[None]:
    """Every table, the auth throttle, the parsed-journey cache and the queue emptied; the real
    clock back after the test."""
    reset_all()
    throttle.forget()
    catalog.forget_parsed()
    segment_catalog.forget_parsed()
    broker.flush_all()
    yield
    clock.set_clock(clock.SystemClock())


class Pipeline:
    """The queue worker, run in-process for a test, and a way to wait until it is idle."""

    def __init__(self) -> None:
        self.worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)

    def drain(self) -> None:
        # The in-process broker re-raises a job's error; on Redis a failing job is retried
        # until the timeout fails the test.
        wait: dict[str, Any] = (
            {"fail_fast": True} if isinstance(broker, StubBroker) else {"timeout": 60_000}
        )
        queues = ("events", *registry.names())
        for _ in range(2):  # events enqueue deliveries: two passes reach the end of the chain
            for queue in queues:
                broker.join(queue, **wait)
            self.worker.join()


# ------------------------------------------------------------------------------------ settings

# Settings fields whose environment variable is the provider's own name, not CARILLON_*.
PROVIDER_ENV = {
    "sendgrid_api_key": "SENDGRID_API_KEY",
    "twilio_account_sid": "TWILIO_ACCOUNT_SID",
    "twilio_auth_token": "TWILIO_AUTH_TOKEN",
    "twilio_from_number": "TWILIO_FROM_NUMBER",
    "twilio_messaging_service_sid": "TWILIO_MESSAGING_SERVICE_SID",
    "meta_access_token": "META_ACCESS_TOKEN",
}


def configure(
    env: pytest.MonkeyPatch, overrides: dict[str, Any] | None = None, **values: Any
) -> None:
    """Set `Settings` fields through their environment variables, as a user would; None unsets
    one. `configure(env, quiet_hours="sms=…")` sets CARILLON_QUIET_HOURS."""
    for field, value in {**(overrides or {}), **values}.items():
        name = PROVIDER_ENV.get(field, f"CARILLON_{field.upper()}")
        if field in PROVIDER_ENV:  # the CARILLON_ spelling is accepted too: never let it win
            env.delenv(f"CARILLON_{field.upper()}", raising=False)
        if value is None:
            env.delenv(name, raising=False)
        else:
            env.setenv(name, str(value))
    get_settings.cache_clear()
    service.channels.cache_clear()


TOKEN = "ops-test-token-0123456789"


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -------------------------------------------------------------------------- people and events


def at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def ingest(*raw: dict[str, Any]) -> list[int]:
    """Store events as the API does, without HTTP; nothing is routed yet."""
    with session_scope() as session:
        return store(session, [SegmentEvent.model_validate(r) for r in raw], "default")


def process(ids: list[int]) -> None:
    """Route the events now. On Redis, a test's `pipeline` worker may have taken one first
    (routing skips a row another transaction holds): its lock is waited for, and whatever it
    left unrouted is routed here, so the events are routed when this returns."""
    for event_id in ids:
        routing.process_one(event_id)
    with session_scope() as session:
        held = select(Event.id).where(Event.id.in_(ids), Event.processed_at.is_(None))
        left = list(session.scalars(held.with_for_update() if is_postgres(session) else held))
    for event_id in left:
        routing.process_one(event_id)


def route(*events: dict[str, Any]) -> None:
    """Store and route the events now (journeys run, deliveries planned), without a worker."""
    process(ingest(*events))


def send(pipeline: Pipeline, *events: dict[str, Any]) -> None:
    """Store the events and let the worker route and deliver everything they cause."""
    ingest(*events)
    pipeline.drain()


def profile_of(kind: str, value: str) -> dict[str, Any]:
    with session_scope() as session:
        identity = session.get(Identity, (kind, value))
        assert identity is not None, f"no profile for {kind}={value}"
        profile = session.get(Profile, identity.profile_id)
        assert profile is not None
        return view(session, profile)


def traits_of(kind: str, value: str) -> dict[str, Any]:
    with session_scope() as session:
        identity = session.get(Identity, (kind, value))
        assert identity is not None
        found = session.scalars(select(Trait).where(Trait.profile_id == identity.profile_id))
        return {t.name: t.value for t in found}


def alice(minutes: int = 0) -> dict[str, Any]:
    return {
        "type": "identify",
        "userId": "alice",
        "timestamp": at(minutes),
        "traits": {
            "first_name": "Alice",
            "email": "alice@example.com",
            "phone": "+33612345678",
            "sms_opt_in": True,  # SMS needs an explicit opt-in (TCPA)
        },
    }


def person(user: str, **traits: Any) -> dict[str, Any]:
    """An identify with an e-mail and a phone, stamped on arrival."""
    return {
        "type": "identify",
        "userId": user,
        "traits": {"email": f"{user}@example.com", "phone": "+33612345678", **traits},
    }


def person_at(user: str = "alice", minutes: int = 0, **traits: Any) -> dict[str, Any]:
    """An identify with a first name and an e-mail, stamped `minutes` after T0."""
    traits = {"first_name": "Alice", "email": f"{user}@example.com", **traits}
    return {"type": "identify", "userId": user, "timestamp": at(minutes), "traits": traits}


def track_now(user: str, event: str) -> dict[str, Any]:
    """A track stamped on arrival."""
    return {"type": "track", "userId": user, "event": event}


def track_at(name: str, minutes: int = 1, user: str = "alice", **properties: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": user,
        "event": name,
        "timestamp": at(minutes),
        "properties": properties,
    }


def cart(total: float, minutes: int = 1, user: str = "alice", **extra: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": user,
        "event": "Cart Abandoned",
        "timestamp": at(minutes),
        "properties": {"total": total, "cart_url": "https://shop.example/cart/1"},
        **extra,
    }


def order(minutes: int = 2, user: str = "alice") -> dict[str, Any]:
    return {"type": "track", "userId": user, "event": "Order Completed", "timestamp": at(minutes)}


def newsletter(minutes: int = 1, user: str = "alice") -> dict[str, Any]:
    return {
        "type": "track",
        "userId": user,
        "event": "Newsletter Subscribed",
        "timestamp": at(minutes),
    }


def newsletter_signup(user: str, phone: str = "+33612345678") -> list[dict[str, Any]]:
    """A person with a phone number who subscribes: the welcome SMS journey."""
    return [
        {
            "type": "identify",
            "userId": user,
            "traits": {"first_name": "Ada", "phone": phone, "sms_opt_in": True},
        },
        {"type": "track", "userId": user, "event": "Newsletter Subscribed"},
    ]


# --------------------------------------------------------------------- journeys and deliveries


def journeys(directory: Path, text: str) -> None:
    """One journey file written and synced, as `serve` does at start."""
    load(directory, text)


def load(directory: Path, *texts: str) -> None:
    """Write the journeys and sync them, as `serve` does at start."""
    for index, journey in enumerate(texts):
        (directory / f"j{index}.yaml").write_text(journey, encoding="utf-8")
    assert catalog.sync_directory(directory) == []


# A journey with one message written for each channel and locale, head and body apart.
HEAD = "id: demo\nname: Demo\ntrigger:\n  event: Signed Up\n"
WELCOME = """
messages:
  welcome:
    email:
      subject: "Bienvenue {{ profile.traits.first_name | default('') }}"
      html: |
        <style>h1 { color: #c00; } @media (max-width: 600px) { h1 { font-size: 20px; } }</style>
        <h1>Bienvenue !</h1>
        <p>Votre code : <a href="https://shop.example/promo">BIENVENUE15</a></p>
    sms:
      text: "Bienvenue ! Code BIENVENUE15 : -15 %."
      max_segments: 1
    locales:
      en:
        email: {subject: "Welcome", html: "<p>Welcome!</p>", text: "Welcome!"}
        sms: {text: "Welcome! Code WELCOME15: 15% off."}
      fr-CA:
        sms:
          text: "{{ profile.traits.first_name }}, bienvenue ! Code BIENVENUE15 : 15 % de rabais."
          max_segments: 1
steps:
  - send: {channel: sms, message: welcome}
  - send: {channel: email, message: welcome}
"""


def deliveries() -> list[Delivery]:
    with session_scope() as session:
        return list(session.scalars(select(Delivery).order_by(Delivery.id)))


def instances() -> list[JourneyInstance]:
    with session_scope() as session:
        return list(session.scalars(select(JourneyInstance).order_by(JourneyInstance.id)))


def timers() -> list[Timer]:
    with session_scope() as session:
        return list(session.scalars(select(Timer).order_by(Timer.id)))


def row(delivery_id: int) -> Delivery:
    with session_scope() as session:
        found = session.get(Delivery, delivery_id)
        assert found is not None
        return found


def only_delivery() -> Delivery:
    [delivery] = deliveries()
    return delivery


def by_journey(journey_id: str) -> Delivery:
    [found] = [d for d in deliveries() if d.journey_id == journey_id]
    return found


def deliver(delivery_id: int) -> Delivery:
    """The worker's send job body, run now for one delivery."""
    service.deliver(delivery_id)
    return row(delivery_id)


def held(delivery_id: int) -> list[tuple[str, str | None]]:
    """What the send-time checks recorded in the delivery's history."""
    with session_scope() as session:
        events: list[DeliveryEvent] = history.of(session, delivery_id)
        return [(e.kind, e.detail) for e in events if e.source == "policy"]


# ---------------------------------------------------------------------------- provider formats


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def twilio_signature(token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's documented scheme: the URL, then each POST parameter name and value in name
    order, HMAC-SHA1 with the auth token, base64."""
    data = url + "".join(name + params[name] for name in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


# A person as a shop sends them, and what Meta must receive instead: hashes only.
RAW_EMAIL = "  Ann.Martin@Example.COM "
RAW_PHONE = "+33 (0)6 12-34-56-78"
EMAIL_HASH = sha256("ann.martin@example.com")
PHONE_HASH = sha256("33612345678")


def assert_no_raw_identifier(request: RecordedRequest, *raw_values: str) -> None:
    everything = " ".join(
        [request.path, json.dumps(request.query), json.dumps(request.headers), request.text]
    ).lower()
    for raw in raw_values:
        for form in {raw, raw.strip(), raw.strip().lower(), quote(raw.strip()), quote_plus(raw)}:
            assert form.lower() not in everything, f"{form!r} left Carillon"


# ------------------------------------------------- the three providers' stand-ins as fixtures


@dataclass
class Providers:
    sendgrid: SendGridServer
    twilio: TwilioServer
    meta: MetaGraphServer

    def all(self) -> list[ProviderServer]:
        return [self.sendgrid, self.twilio, self.meta]


def instagram_like(minutes: int = 1, user: str = "alice") -> dict[str, Any]:
    return {
        "type": "track",
        "userId": user,
        "event": "Instagram Post Liked",
        "timestamp": at(minutes),
    }


def model_issues(text: str) -> list[str]:
    """The journey language's models on a journey file's text: its issues, [] when valid."""
    try:
        validate_yaml(text, "j.yaml", journey_model(), "the journey")
    except FileInvalid as exc:
        return [str(issue) for issue in exc.issues]
    return []
