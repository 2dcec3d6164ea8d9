"""Budgets per channel and period (CARILLON_BUDGETS=sms=…EUR/day) and per journey (its
`budget:`): counted in billed units times the price, never passed, not even by three workers
claiming at once (PostgreSQL: the per-channel and per-journey locks; SQLite: one writer at a
time); a message over one waits for the next period, is dropped, or goes out on the journey's
fallback channel; transactional messages count but are never held; bad values refused at
start."""

from __future__ import annotations

import contextlib
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from app.clock import ManualClock
from app.db import session_scope
from app.delivery import checks, models, service
from tests.delivery.conftest import EMAIL, SMS, journey_yaml, refusal_at_start
from tests.helpers import (
    WELCOME,
    Providers,
    configure,
    deliver,
    deliveries,
    held,
    load,
    person,
    route,
    row,
    track_now,
)
from tests.providers.twilio import TwilioServer

# Three one-segment SMS at 0.07 EUR: a budget of two messages' worth.
TWO_SMS = "sms=0.14EUR/day"


@pytest.fixture
def budgeted(
    settings_env: pytest.MonkeyPatch, twilio: TwilioServer, manual_clock: ManualClock
) -> ManualClock:
    configure(settings_env, cost_per_message="sms=0.07", budgets=TWO_SMS)
    return manual_clock


def three_sms(tmp_path: Path, policy: str = "") -> list[int]:
    load(tmp_path, journey_yaml("welcome", "Go", SMS, policy))
    people = [f"p{i}" for i in range(3)]
    route(*(person(p, sms_consent="opted_in") for p in people))
    route(*(track_now(p, "Go") for p in people))
    return [d.id for d in deliveries()]


def test_the_message_over_the_budget_waits_for_the_next_period(
    budgeted: ManualClock, tmp_path: Path, twilio: TwilioServer
) -> None:
    ids = three_sms(tmp_path)
    assert [deliver(i).status for i in ids] == [models.SENT, models.SENT, models.PENDING]
    held = row(ids[2])
    assert held.next_attempt_at == budgeted.now().replace(hour=0) + timedelta(days=1)
    assert "budget sms 0.14EUR/day: 0.14 EUR spent, this message costs 0.07" in (held.error or "")
    assert len(twilio.requests) == 2
    budgeted.advance(timedelta(days=1))
    assert deliver(ids[2]).status == models.SENT


def test_skip_drops_it(
    budgeted: ManualClock, tmp_path: Path, settings_env: pytest.MonkeyPatch
) -> None:
    configure(settings_env, on_budget="skip")
    ids = three_sms(tmp_path)
    assert [deliver(i).status for i in ids] == [models.SENT, models.SENT, models.SUPPRESSED]


def test_an_sms_spends_its_segments(budgeted: ManualClock, tmp_path: Path) -> None:
    long_sms = '{channel: sms, text: "' + "x" * 170 + '"}'  # two segments: 0.14 EUR
    load(tmp_path, journey_yaml("welcome", "Go", long_sms))
    route(*(person(p, sms_consent="opted_in") for p in ("a", "b")))
    route(*(track_now(p, "Go") for p in ("a", "b")))
    assert [deliver(d.id).status for d in deliveries()] == [models.SENT, models.PENDING]


def test_transactional_messages_are_never_held_but_count(
    budgeted: ManualClock, tmp_path: Path
) -> None:
    load(
        tmp_path,
        journey_yaml("code", "Login", SMS, "kind: transactional\n"),
        journey_yaml("promo", "Go", SMS),
    )
    route(person("a", sms_consent="opted_in"))
    route(*(track_now("a", "Login") for _ in range(3)))
    codes = [d.id for d in deliveries()]
    assert [deliver(i).status for i in codes] == [models.SENT] * 3  # over budget, still sent
    route(track_now("a", "Go"))
    [promo] = [d for d in deliveries() if d.journey_id == "promo"]
    assert deliver(promo.id).status == models.PENDING


@pytest.mark.parametrize("whose", ["channel", "journey"])
def test_three_workers_racing_never_pass_the_budget(
    budgeted: ManualClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    settings_env: pytest.MonkeyPatch,
    whose: str,
) -> None:
    """All three claims are made (three `sending` rows, none committed) before any counts. On
    PostgreSQL each count waits for the channel's (or the journey's) lock, held by the claim's
    transaction until it commits, and then sees the rows claimed before; SQLite runs one
    writer at a time."""
    if whose == "journey":
        configure(settings_env, budgets=None)
    ids = three_sms(tmp_path, JOURNEY_BUDGET if whose == "journey" else "")
    with session_scope() as session:
        postgres = session.get_bind().dialect.name == "postgresql"
    all_claimed = threading.Barrier(3, timeout=30)
    # Without the lock all three would count before any commits and meet here; with it, the
    # first waits alone until the wait gives up, then commits, and the others count after it.
    all_counted = threading.Barrier(3, timeout=1)

    def rendezvous(context: checks.SendContext) -> checks.Verdict:
        if postgres:
            all_claimed.wait()
        return None

    def counted(context: checks.SendContext) -> checks.Verdict:
        if postgres:
            with contextlib.suppress(threading.BrokenBarrierError):
                all_counted.wait()
        return None

    budget = checks.CHECKS[-1]
    monkeypatch.setattr(checks, "CHECKS", [*checks.CHECKS[:-1], rendezvous, budget, counted])
    errors: list[BaseException] = []

    def work(delivery_id: int) -> None:
        try:
            service.deliver(delivery_id)
        except BaseException as exc:  # surfaced below: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == [] and not any(t.is_alive() for t in threads)
    assert sorted(row(i).status for i in ids) == [models.PENDING, models.SENT, models.SENT]


JOURNEY_BUDGET = "budget: {amount: 0.14EUR, per: day}\n"


@pytest.fixture
def priced(
    settings_env: pytest.MonkeyPatch, twilio: TwilioServer, manual_clock: ManualClock
) -> ManualClock:
    """SMS at 0.07 EUR, no channel budget."""
    configure(settings_env, cost_per_message="sms=0.07")
    return manual_clock


def test_a_journey_budget_holds_its_own_messages_only(
    priced: ManualClock, tmp_path: Path, twilio: TwilioServer
) -> None:
    load(
        tmp_path,
        journey_yaml("welcome", "Go", SMS, JOURNEY_BUDGET),
        journey_yaml("other", "Go", SMS),
    )
    route(*(person(f"p{i}", sms_consent="opted_in") for i in range(3)))
    route(*(track_now(f"p{i}", "Go") for i in range(3)))
    statuses = {
        journey: [deliver(d.id).status for d in deliveries() if d.journey_id == journey]
        for journey in ("welcome", "other")
    }
    assert statuses == {
        "welcome": [models.SENT, models.SENT, models.PENDING],
        "other": [models.SENT] * 3,  # its messages neither count nor are held
    }
    [waiting] = [d for d in deliveries() if d.status == models.PENDING]
    assert waiting.next_attempt_at == priced.now().replace(hour=0) + timedelta(days=1)
    reason = "budget of journey welcome 0.14EUR/day: 0.14 EUR spent, this message costs 0.07"
    assert any(kind == "deferred" and reason in (detail or "") for kind, detail in held(waiting.id))
    assert len(twilio.requests) == 5
    priced.advance(timedelta(days=1))
    assert deliver(waiting.id).status == models.SENT


def test_a_journey_that_says_skip_drops_what_its_budget_holds(
    priced: ManualClock, tmp_path: Path
) -> None:
    policy = "budget: {amount: 0.14EUR, per: day, on_budget: skip}\n"
    ids = three_sms(tmp_path, policy)
    assert [deliver(i).status for i in ids] == [models.SENT, models.SENT, models.SUPPRESSED]


def test_a_journeys_on_budget_also_rules_its_messages_held_by_a_channel_budget(
    budgeted: ManualClock, tmp_path: Path
) -> None:
    ids = three_sms(tmp_path, "budget: {on_budget: skip}\n")  # CARILLON_ON_BUDGET: wait
    assert [deliver(i).status for i in ids] == [models.SENT, models.SENT, models.SUPPRESSED]


def test_on_budget_per_channel_skips_the_sms_and_keeps_the_email_waiting(
    settings_env: pytest.MonkeyPatch,
    providers: Providers,
    manual_clock: ManualClock,
    tmp_path: Path,
) -> None:
    """CARILLON_ON_BUDGET=sms=skip,email=wait: each channel's third message is over its budget
    of two; the SMS is dropped, the e-mail goes out the next day."""
    configure(
        settings_env,
        cost_per_message="sms=0.07,email=0.001",
        budgets=f"{TWO_SMS},email=0.002EUR/day",
        on_budget="sms=skip,email=wait",
    )
    load(tmp_path, journey_yaml("texts", "Go", SMS), journey_yaml("mails", "Go", EMAIL))
    route(*(person(f"p{i}", sms_consent="opted_in") for i in range(3)))
    route(*(track_now(f"p{i}", "Go") for i in range(3)))
    by_channel: dict[str, list[str]] = {"sms": [], "email": []}
    for delivery in sorted(deliveries(), key=lambda d: d.id):
        by_channel[delivery.channel].append(deliver(delivery.id).status)
    assert by_channel == {
        "sms": [models.SENT, models.SENT, models.SUPPRESSED],
        "email": [models.SENT, models.SENT, models.PENDING],
    }
    [waiting] = [d for d in deliveries() if d.status == models.PENDING]
    manual_clock.advance(timedelta(days=1))
    assert deliver(waiting.id).status == models.SENT
    assert (len(providers.twilio.requests), len(providers.sendgrid.requests)) == (2, 3)


def test_paid_social_priced_per_thousand_people_spends_its_budget(
    settings_env: pytest.MonkeyPatch,
    providers: Providers,
    manual_clock: ManualClock,
    tmp_path: Path,
) -> None:
    """meta_audience at 6.50 EUR a thousand people: a budget of 0.013 EUR a day adds two."""
    configure(
        settings_env, cost_per_thousand="meta_audience=6.50", budgets="meta_audience=0.013EUR/day"
    )
    audience = '{channel: meta_audience, audience_id: "23850000000000001"}'
    load(tmp_path, journey_yaml("retarget", "Go", audience))
    route(*(person(f"p{i}") for i in range(3)))
    route(*(track_now(f"p{i}", "Go") for i in range(3)))
    ids = [d.id for d in deliveries()]
    assert [deliver(i).status for i in ids] == [models.SENT, models.SENT, models.PENDING]
    reason = "budget meta_audience 0.013EUR/day: 0.013 EUR spent, this message costs 0.0065"
    assert reason in (row(ids[2]).error or "")
    assert len(providers.meta.requests) == 2


FALLBACK = (
    "id: welcome\nname: Welcome\ntrigger:\n  event: Go\nre_entry: always\n"
    + WELCOME.split("steps:")[0]
    + "steps:\n  - send: {channel: sms, message: welcome}\n"
    + "budget:\n  on_budget: {fallback: email}\n"
)


@pytest.fixture
def sms_over_budget(
    settings_env: pytest.MonkeyPatch, providers: Providers, manual_clock: ManualClock
) -> Providers:
    """Two SMS' worth on the SMS budget; e-mail cheap and not budgeted."""
    configure(settings_env, cost_per_message="sms=0.07,email=0.001", budgets=TWO_SMS)
    return providers


def test_fallback_sends_the_messages_email_variant_when_the_sms_budget_is_spent(
    sms_over_budget: Providers, tmp_path: Path
) -> None:
    load(tmp_path, FALLBACK)
    route(*(person(f"p{i}", sms_consent="opted_in", first_name=f"P{i}") for i in range(3)))
    route(*(track_now(f"p{i}", "Go") for i in range(3)))
    ids = [d.id for d in deliveries()]
    assert [deliver(i).status for i in ids] == [models.SENT, models.SENT, models.PENDING]
    moved = row(ids[2])
    assert (moved.channel, moved.attempts, moved.next_attempt_at) == ("email", 0, None)
    assert moved.content["subject"] == "Bienvenue P2"
    assert held(ids[2]) == [
        (
            "fallback",
            "budget sms 0.14EUR/day: 0.14 EUR spent, this message costs 0.07: sent by email "
            "instead of sms",
        )
    ]
    assert deliver(ids[2]).status == models.SENT  # by e-mail, on its own queue's checks
    [mail] = sms_over_budget.sendgrid.requests
    assert mail.body["personalizations"][0]["to"][0]["email"] == "p2@example.com"
    assert len(sms_over_budget.twilio.requests) == 2


def test_without_consent_for_the_fallback_the_message_waits_and_says_why(
    sms_over_budget: Providers, tmp_path: Path
) -> None:
    load(tmp_path, FALLBACK)
    route(*(person(f"p{i}", sms_consent="opted_in") for i in range(2)))
    route(person("p2", sms_consent="opted_in", email_consent="unsubscribed"))
    route(*(track_now(f"p{i}", "Go") for i in range(3)))
    ids = [d.id for d in deliveries()]
    assert [deliver(i).status for i in ids] == [models.SENT, models.SENT, models.PENDING]
    waiting = row(ids[2])
    assert waiting.channel == "sms" and waiting.next_attempt_at is not None
    assert "no fallback to email: " in (waiting.error or "")
    assert sms_over_budget.sendgrid.requests == []


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("sms=50EUR", "a budget without a period"),
        ("sms=50EUR/", "a budget without a period"),
        ("sms=50EUR/year", "unknown period 'year'"),
        ("sms=50USD/day", "the budget is in USD but costs are counted in EUR"),
        ("sms=0EUR/day", "the amount must be a number above zero"),
        ("sms=fifty/day", "the amount must be a number above zero"),
        ("pigeon=5EUR/day", "unknown channel 'pigeon'"),
        ("sms=5EUR/day,sms=6EUR/day", "sms has two budgets"),
    ],
)
def test_a_bad_budget_is_refused_at_start(
    settings_env: pytest.MonkeyPatch, value: str, problem: str
) -> None:
    said = refusal_at_start(settings_env, "CARILLON_BUDGETS", value)
    assert problem in said and "e.g. sms=50EUR/day" in said


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("later", "'later' should be wait or skip, or per channel e.g. "),
        ("", "'' should be wait or skip"),
        ("sms=later", "'sms=later' should be channel=value, e.g. "),
        ("sms=skip,pigeon=wait", "unknown channel 'pigeon'; one of: email"),
        ("sms=skip,=wait", "'=wait' should be channel=value"),
    ],
)
def test_a_bad_on_budget_is_refused_at_start(
    settings_env: pytest.MonkeyPatch, value: str, problem: str
) -> None:
    said = refusal_at_start(settings_env, "CARILLON_ON_BUDGET", value)
    assert problem in said
