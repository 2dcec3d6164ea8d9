"""Paid-social cost read from Meta's ad insights (CARILLON_META_AD_SETS): the scheduler's job
reads each configured ad set's spend per day from the Graph stand-in, over the real wire
format; the audience channel then costs that spend in ROI, shared over journeys and arms by the
people each added to the audience. Revised days are overwritten, pages followed, and a failed
read (expired token, throttling, an outage) keeps what was stored and says why. Time is a
manual clock."""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import select
from typer.testing import CliRunner

from app import scheduler
from app.analytics import roi, spend
from app.analytics.models import AdSpend, SpendRead
from app.cli import app
from app.clock import ManualClock
from app.db import session_scope
from app.journeys import catalog
from app.main import create_app
from app.ops import kpis
from app.settings import get_settings
from channels.meta_audience.settings import MetaSettings
from channels.settings import read
from tests.helpers import (
    TOKEN,
    Providers,
    bearer,
    configure,
    deliver,
    deliveries,
    identify,
    route,
    track,
)
from tests.processes import CARILLON
from tests.providers.meta import TEST_ACCESS_TOKEN, throttled

AUDIENCE, OTHER_AUDIENCE = "23850000000000001", "23850000000000002"
AD_SETS = f"{AUDIENCE}=120210000000000001|120210000000000002,{OTHER_AUDIENCE}=120210000000000003"
FIRST, SECOND, THIRD = "120210000000000001", "120210000000000002", "120210000000000003"
RETARGET = f"""\
id: retarget
name: Retarget on Facebook, two arms
trigger: {{event: Cart Abandoned}}
goal: {{event: Order Completed, within: 7d, value: event.properties.total, currency: EUR}}
steps:
  - split:
      - {{weight: 50, steps: [send: {{channel: meta_audience, audience_id: "{AUDIENCE}"}}]}}
      - {{weight: 50, steps: [send: {{channel: meta_audience, audience_id: "{AUDIENCE}"}}]}}
"""
LOOKALIKE = f"""\
id: lookalike
name: Seed a lookalike
trigger: {{event: Signed Up}}
steps:
  - send: {{channel: meta_audience, audience_id: "{OTHER_AUDIENCE}"}}
"""


@pytest.fixture
def insights(
    providers: Providers, manual_clock: ManualClock, settings_env: pytest.MonkeyPatch
) -> Providers:
    """The audience channel costed by its ad sets' spend; the stand-in knows the ad sets."""
    configure(settings_env, meta_ad_sets=AD_SETS, admin_token=TOKEN)
    for ad_set in (FIRST, SECOND, THIRD):
        providers.meta.spend[ad_set] = {}
    return providers


def today(clock: ManualClock) -> date:
    return clock.now().date()


def stored() -> dict[tuple[str, date], tuple[float, str]]:
    with session_scope() as session:
        return {
            (row.ad_set, row.day): (row.amount, row.currency)
            for row in session.scalars(select(AdSpend))
        }


def status(ad_set: str) -> SpendRead:
    with session_scope() as session:
        found = session.scalar(select(SpendRead).where(SpendRead.ad_set == ad_set))
    assert found is not None
    return found


def report(by: str) -> list[roi.Figures]:
    with session_scope() as session:
        return (roi.channels if by == "channels" else roi.journeys)(session, get_settings())


def add_people(tmp_path: Path, clock: ManualClock) -> Counter[str | None]:
    """Six people through the split (audience one), two through the lookalike (audience two);
    returns how many each arm added."""
    (tmp_path / "retarget.yaml").write_text(RETARGET)
    (tmp_path / "lookalike.yaml").write_text(LOOKALIKE)
    catalog.sync_directory(tmp_path)
    now = clock.now().isoformat()
    shoppers, seeds = [f"s{i}" for i in range(6)], ["l0", "l1"]
    route(*(identify(p, {"email": f"{p}@example.com"}, now) for p in shoppers + seeds))
    route(*(track(p, "Cart Abandoned", {}, now) for p in shoppers))
    route(*(track(p, "Signed Up", {}, now) for p in seeds))
    for row in deliveries():
        deliver(row.id)
    rows = deliveries()
    assert [r.status for r in rows] == ["sent"] * 8
    return Counter(r.arm for r in rows if r.journey_id == "retarget")


def test_the_spend_read_is_the_channels_cost_and_shared_by_people_added(
    insights: Providers, manual_clock: ManualClock, tmp_path: Path
) -> None:
    """Audience one: 8.00 over its two ad sets, shared by the split's arms by people added;
    audience two: 3.50, all the lookalike's. One shopper buys for 20 EUR."""
    arms = add_people(tmp_path, manual_clock)
    day = today(manual_clock)
    insights.meta.spend[FIRST] = {day - timedelta(days=1): "4.00", day: "2.00"}
    insights.meta.spend[SECOND] = {day: "2.00"}
    insights.meta.spend[THIRD] = {day - timedelta(days=1): "3.50"}
    before = len(insights.meta.requests)
    scheduler.read_spend()
    calls = insights.meta.requests[before:]
    assert [c.path for c in calls] == [f"/v21.0/{a}/insights" for a in (FIRST, SECOND, THIRD)]
    assert {c.method for c in calls} == {"GET"}
    query = {name: values[0] for name, values in calls[0].query.items()}
    since = (day - timedelta(days=spend.FIRST_DAYS - 1)).isoformat()
    assert query == {
        "fields": "spend,account_currency",
        "time_increment": "1",
        "time_range": json.dumps({"since": since, "until": day.isoformat()}),
    }
    # In a header, never in a URL that a log line prints.
    assert {c.header("authorization") for c in calls} == {f"Bearer {TEST_ACCESS_TOKEN}"}
    assert stored()[(FIRST, day - timedelta(days=1))] == (4.0, "EUR")
    route(track("s0", "Order Completed", {"total": 20}, manual_clock.now().isoformat()))

    meta = {row.channel: row for row in report("channels")}["meta_audience"]
    assert (meta.sent, meta.cost, meta.revenue) == (8, pytest.approx(11.5), 20.0)
    assert meta.roi == pytest.approx((20 - 11.5) / 11.5)
    rows = {(row.journey, row.arm): row for row in report("journeys")}
    assert rows[("retarget", roi.ALL_ARMS)].cost == pytest.approx(8.0)
    for arm, people in arms.items():
        assert rows[("retarget", arm)].cost == pytest.approx(8.0 * people / 6)
    assert rows[("lookalike", roi.ALL_ARMS)].cost == pytest.approx(3.5)
    with session_scope() as session:
        shown = {k.channel: k for k in kpis.channels(session)}["meta_audience"]
    assert (shown.cost, shown.cost_per_message) == (pytest.approx(11.5), pytest.approx(11.5 / 8))
    answer = CliRunner().invoke(app, ["report", "channels", "--format", "json"])
    assert answer.exit_code == 0 and answer.stderr == ""
    found = {row["channel"]: row for row in json.loads(answer.stdout)}["meta_audience"]
    assert found["cost"] == pytest.approx(11.5)


def test_a_revised_day_is_overwritten_and_a_day_no_longer_reported_is_gone(
    insights: Providers, manual_clock: ManualClock
) -> None:
    """The next read an hour later re-reads the last days; older days are left as read."""
    day = today(manual_clock)
    old, recent = day - timedelta(days=10), day - timedelta(days=1)
    insights.meta.spend[FIRST] = {old: "5.00", recent: "4.00", day: "1.00"}
    spend.read_due()
    assert stored()[(FIRST, recent)] == (4.0, "EUR")
    insights.meta.spend[FIRST] = {old: "9.99", recent: "4.75"}  # Meta revised yesterday
    spend.read_due()
    assert stored()[(FIRST, recent)] == (4.0, "EUR")  # not due yet: nothing asked
    manual_clock.advance(spend.READ_EVERY)
    assert spend.read_due() == 3
    first = {d: v for (a, d), v in stored().items() if a == FIRST}
    assert first == {old: (5.0, "EUR"), recent: (4.75, "EUR")}
    query = insights.meta.requests[-3].query["time_range"][0]
    since = (day - timedelta(days=spend.REVISED_DAYS)).isoformat()
    assert json.loads(query) == {"since": since, "until": day.isoformat()}


def test_every_page_is_read(insights: Providers, manual_clock: ManualClock) -> None:
    """28 days with spend: Graph's 25 rows, then the rest through `paging.next`."""
    day = today(manual_clock)
    insights.meta.spend[FIRST] = {day - timedelta(days=n): f"{n}.50" for n in range(28)}
    spend.read_due()
    calls = [c for c in insights.meta.requests if c.path.endswith(f"/{FIRST}/insights")]
    assert len(calls) == 2 and "after" in calls[1].query
    # Graph's next page address carries the token; it is taken out and sent in the header.
    assert "access_token" not in calls[1].query
    assert calls[1].header("authorization") == f"Bearer {TEST_ACCESS_TOKEN}"
    first = {d: v for (a, d), v in stored().items() if a == FIRST}
    assert len(first) == 28 and first[day - timedelta(days=27)] == (27.5, "EUR")


def test_an_expired_token_leaves_the_spend_stale_and_says_why(
    insights: Providers, manual_clock: ManualClock
) -> None:
    day = today(manual_clock)
    insights.meta.spend[FIRST] = {day: "3.00"}
    spend.read_due()
    insights.meta.expire_token()
    insights.meta.spend[FIRST] = {day: "7.00"}
    manual_clock.advance(spend.READ_EVERY)
    assert spend.read_due() == 0
    assert stored()[(FIRST, day)] == (3.0, "EUR")  # nothing overwritten
    failed = status(FIRST)
    assert failed.error is not None and failed.error.startswith("190/463: Error validating")
    assert failed.next_read_at == manual_clock.now() + spend.READ_EVERY
    meta = {row.channel: row for row in report("channels")}["meta_audience"]
    assert meta.cost == pytest.approx(3.0)  # what was read stands, flagged beside it
    answer = CliRunner().invoke(app, ["report", "channels"])
    assert answer.exit_code == 0
    notes = answer.stderr.splitlines()
    assert len(notes) == 3  # each ad set of the one token
    assert notes[0].startswith(f"note: meta_audience ad set {FIRST} (audience {AUDIENCE}): ")
    assert "spend is stale" in notes[0] and "190/463: Error validating access token" in notes[0]
    assert f"spend known through {day}" in notes[0]
    shown = TestClient(create_app()).get("/ops/ad-spend", headers=bearer()).json()
    assert [(a["ad_set"], a["stale"]) for a in shown] == [
        (FIRST, True),
        (SECOND, True),
        (THIRD, True),
    ]
    assert "Session has expired" in shown[0]["error"]
    page = TestClient(create_app()).get("/ops", headers=bearer()).text
    assert f'data-ad-set="{FIRST}"' in page and "Session has expired" in page


# Meta's throttling headers: when the ad account's insights calls are accepted again.
USAGE = {"1234": [{"type": "ads_insights", "estimated_time_to_regain_access": 5}]}


@pytest.mark.parametrize(
    ("status_code", "body", "headers", "wait"),
    [
        (*throttled(4), {}, timedelta(minutes=1)),
        (*throttled(17), {}, timedelta(minutes=1)),
        (*throttled(80004), {"X-Business-Use-Case-Usage": json.dumps(USAGE)}, timedelta(minutes=5)),
        (503, "Service Unavailable", {}, timedelta(minutes=1)),
    ],
    ids=["code-4", "code-17", "code-80004", "http-503"],
)
def test_throttling_or_an_outage_is_tried_again_later(
    insights: Providers,
    manual_clock: ManualClock,
    status_code: int,
    body: object,
    headers: dict[str, str],
    wait: timedelta,
) -> None:
    """Backed off (Meta's own estimate when it gives one), stale meanwhile, then read."""
    day = today(manual_clock)
    insights.meta.spend[FIRST] = {day: "2.50"}
    insights.meta.fail_next(status_code, body, headers)
    assert spend.read_due() == 2  # the other ad sets were read
    failed = status(FIRST)
    assert failed.failures == 1 and failed.next_read_at == manual_clock.now() + wait
    assert (FIRST, day) not in stored()
    meta = {row.channel: row for row in report("channels")}["meta_audience"]
    assert meta.cost is None  # an ad set never read: unknown, not a partial sum
    manual_clock.advance(wait - timedelta(seconds=1))
    assert spend.read_due() == 0
    manual_clock.advance(timedelta(seconds=1))
    assert spend.read_due() == 1
    assert stored()[(FIRST, day)] == (2.5, "EUR")
    assert (status(FIRST).error, status(FIRST).failures) == (None, 0)


def test_an_answer_not_shaped_as_documented_is_refused_and_kept_out(
    insights: Providers, manual_clock: ManualClock
) -> None:
    """A row spanning two days (no time_increment) is not a day's spend: nothing stored, the
    reason shown, asked again an hour later since asking sooner gives the same."""
    day = today(manual_clock)
    row = {
        "spend": "9.00",
        "account_currency": "EUR",
        "date_start": (day - timedelta(days=1)).isoformat(),
        "date_stop": day.isoformat(),
    }
    insights.meta.fail_next(200, {"data": [row], "paging": {"cursors": {}}})
    spend.read_due()
    assert (FIRST, day) not in stored()
    failed = status(FIRST)
    assert failed.error is not None and "is not one day's spend" in failed.error
    assert failed.next_read_at == manual_clock.now() + spend.READ_EVERY


def test_the_scheduler_has_the_spend_job() -> None:
    [job] = [
        j for j in scheduler.build(blocking=False).get_jobs() if j.id == "analytics.read_spend"
    ]
    assert job.func is scheduler.read_spend
    assert job.trigger.interval == timedelta(seconds=scheduler.SPEND_INTERVAL_SECONDS)


def test_spend_in_another_currency_is_refused_not_summed(
    insights: Providers, manual_clock: ManualClock
) -> None:
    insights.meta.account_currency = "USD"
    insights.meta.spend[FIRST] = {today(manual_clock): "2.00"}
    spend.read_due()
    with pytest.raises(roi.CurrencyMismatch, match="ad spend is in USD"):
        report("channels")
    answer = CliRunner().invoke(app, ["report", "journeys"])
    assert answer.exit_code == 2
    assert "CARILLON_COST_CURRENCY" in answer.stderr
    with session_scope() as session:
        shown = {k.channel: k for k in kpis.channels(session)}["meta_audience"]
    assert shown.cost is None


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"meta_ad_sets": "audience=120210000000000001"}, "should be audience_id=ad_set_id"),
        ({"meta_ad_sets": AUDIENCE}, "should be audience_id=ad_set_id"),
        ({"meta_ad_sets": f"{AUDIENCE}=1|"}, "should be audience_id=ad_set_id"),
        ({"meta_ad_sets": f"{AUDIENCE}=1,{AUDIENCE}=2"}, f"audience {AUDIENCE} is named twice"),
        ({"meta_ad_sets": f"{AUDIENCE}=1,{OTHER_AUDIENCE}=1"}, "ad set 1 is named twice"),
        ({"meta_ad_sets": f"{AUDIENCE}=1|1"}, "ad set 1 is named twice"),
        ({"meta_ad_sets": AD_SETS, "meta_access_token": None}, "needs META_ACCESS_TOKEN"),
        (
            {"meta_ad_sets": AD_SETS, "cost_per_thousand": "meta_audience=6.50"},
            "meta_audience is also priced in CARILLON_COST_PER_THOUSAND",
        ),
        (
            {"meta_ad_sets": AD_SETS, "budgets": "meta_audience=10EUR/day"},
            "CARILLON_BUDGETS has a budget for meta_audience",
        ),
    ],
)
def test_a_bad_ad_set_setting_is_refused_and_nothing_read(
    providers: Providers,
    settings_env: pytest.MonkeyPatch,
    values: dict[str, str | None],
    problem: str,
) -> None:
    configure(settings_env, values)
    with pytest.raises(ValidationError) as raised:
        read(MetaSettings)
    assert "CARILLON_META_AD_SETS" in str(raised.value) and problem in str(raised.value)
    assert providers.meta.requests == []


def test_the_scheduler_refuses_a_bad_value_in_one_line(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CARILLON_DATABASE_URL": f"sqlite:///{tmp_path}/carillon.db",
        "META_ACCESS_TOKEN": TEST_ACCESS_TOKEN,
        "CARILLON_META_AD_SETS": f"{AUDIENCE}=adset-1",
    }
    done = subprocess.run(
        [CARILLON, "scheduler"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.startswith(
        f"carillon: CARILLON_META_AD_SETS: '{AUDIENCE}=adset-1': should be audience_id=ad_set_id"
    )
    assert len(done.stderr.strip().splitlines()) == 1
