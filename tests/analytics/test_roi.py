"""Cost, revenue and ROI per channel, journey and arm (`carillon report channels|journeys`):
an SMS costs its segments, a dry run nothing, revenue is what attribution credited, and revenue
in another currency than the costs is refused with a clear error. Messages go out through the
providers' local stand-ins; time is a manual clock."""

from __future__ import annotations

import csv
import io
import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError
from typer.testing import CliRunner

from app.analytics import roi
from app.cli import app
from app.clock import ManualClock
from app.db import session_scope
from app.journeys import catalog
from app.journeys.timers import fire_due
from app.main import create_app
from app.settings import get_settings
from tests.helpers import (
    AB_TEST,
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

# 170 GSM-7 characters: two segments, billed twice.
LONG_SMS = "Dernier rappel : " + "x" * 153
JOURNEY = f"""\
id: winback
name: Win-back with revenue
trigger:
  event: Cart Abandoned
goal:
  event: Order Completed
  within: 7d
  value: event.properties.total
  currency: EUR
steps:
  - send: {{channel: email, subject: Votre panier, html: "<p>Votre panier</p>", text: Panier}}
  - wait: 1d
  - send: {{channel: sms, text: "{LONG_SMS}"}}
"""
PRICES = "email=0.001,sms=0.07"


@pytest.fixture
def priced(settings_env: pytest.MonkeyPatch, manual_clock: ManualClock) -> ManualClock:
    configure(settings_env, cost_per_message=PRICES)
    return manual_clock


def send_all() -> None:
    for delivery in deliveries():
        if delivery.status == "pending":
            deliver(delivery.id)


def winback(tmp_path: Path, clock: ManualClock, total: float | None = 42.5) -> None:
    (tmp_path / "winback.yaml").write_text(JOURNEY)
    catalog.sync_directory(tmp_path)
    traits = {"email": "ada@example.com", "phone": "+33611111111", "sms_opt_in": True}
    now = clock.now().isoformat()
    route(identify("ada", traits, now), track("ada", "Cart Abandoned", {}, now))
    send_all()
    clock.advance(timedelta(days=1))
    fire_due(100)
    send_all()
    clock.advance(timedelta(hours=2))
    if total is not None:
        route(track("ada", "Order Completed", {"total": total}, clock.now().isoformat()))


def report(by: str) -> list[roi.Figures]:
    with session_scope() as session:
        return (roi.channels if by == "channels" else roi.journeys)(session, get_settings())


def test_an_sms_costs_its_segments_and_roi_is_revenue_less_cost_over_cost(
    providers: Providers, priced: ManualClock, tmp_path: Path
) -> None:
    winback(tmp_path, priced)
    by_channel = {row.channel: row for row in report("channels")}
    sms, email = by_channel["sms"], by_channel["email"]
    assert (sms.sent, sms.units, sms.revenue, sms.currency) == (1, 2, 42.5, "EUR")
    assert sms.cost == pytest.approx(0.14)
    assert sms.roi == pytest.approx((42.5 - 0.14) / 0.14)
    assert (email.sent, email.units, email.revenue) == (1, 1, 0.0)
    assert email.cost == pytest.approx(0.001) and email.roi == pytest.approx(-1.0)
    # A channel that sent nothing costs nothing and has no ROI.
    assert by_channel["meta_audience"].cost == 0 and by_channel["meta_audience"].roi is None
    [journey] = report("journeys")
    assert (journey.journey, journey.arm, journey.sent, journey.units) == (
        "winback",
        roi.ALL_ARMS,
        2,
        3,
    )
    assert journey.cost == pytest.approx(0.141)
    assert journey.roi == pytest.approx((42.5 - 0.141) / 0.141)


def test_a_channel_without_a_price_has_no_cost_and_no_roi(
    providers: Providers,
    manual_clock: ManualClock,
    tmp_path: Path,
    settings_env: pytest.MonkeyPatch,
) -> None:
    configure(settings_env, cost_per_message="sms=0.07")  # e-mail's price unknown
    winback(tmp_path, manual_clock)
    by_channel = {row.channel: row for row in report("channels")}
    assert by_channel["email"].cost is None and by_channel["email"].roi is None
    [journey] = report("journeys")
    assert journey.cost is None and journey.roi is None  # part of its cost is unknown


def test_a_dry_run_costs_nothing(
    no_credentials: Providers, priced: ManualClock, tmp_path: Path
) -> None:
    winback(tmp_path, priced)
    by_channel = {row.channel: row for row in report("channels")}
    assert (by_channel["sms"].sent, by_channel["sms"].cost) == (0, 0)


def test_each_arm_of_a_split_has_its_own_figures(
    providers: Providers, priced: ManualClock, tmp_path: Path
) -> None:
    shutil.copy(AB_TEST, tmp_path / AB_TEST.name)
    catalog.sync_directory(tmp_path)
    people = [f"p{i}" for i in range(30)]
    now = priced.now().isoformat()
    route(*(identify(p, {"email": f"{p}@example.com"}, now) for p in people))
    route(*(track(p, "Cart Abandoned", {"total": 30}, now) for p in people))
    priced.advance(timedelta(hours=1))
    fire_due(500)
    send_all()
    route(*(track(p, "Order Completed", {"total": 30}, priced.now().isoformat()) for p in people))
    rows = report("journeys")
    whole, *arms = rows
    assert whole.arm == roi.ALL_ARMS and {row.arm for row in arms} <= {"A", "B"}
    assert sum(row.sent for row in arms) == whole.sent == len([d for d in deliveries()])
    assert sum(row.revenue for row in arms) == whole.revenue == 30 * whole.sent
    for row in arms:
        assert row.cost == pytest.approx(0.001 * row.sent)


def test_the_reports_print_as_table_csv_and_json(
    providers: Providers, priced: ManualClock, tmp_path: Path
) -> None:
    winback(tmp_path, priced)
    runner = CliRunner()
    table = runner.invoke(app, ["report", "channels"])
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["CHANNEL", "SENT", "UNITS", "COST", "REVENUE", "ROI"]
    sms = next(line for line in lines if line.startswith("sms"))
    assert sms.split() == ["sms", "1", "2", "0.14", "EUR", "42.50", "EUR", "+30257.1%"]
    as_csv = runner.invoke(app, ["report", "journeys", "--format", "csv"])
    assert as_csv.exit_code == 0, as_csv.output
    [row] = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert (row["journey"], row["arm"], row["sent"], row["units"]) == ("winback", "(all)", "2", "3")
    assert (row["cost"], row["revenue"], row["currency"]) == ("0.141", "42.5", "EUR")
    as_json = runner.invoke(app, ["report", "channels", "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    found = {row["channel"]: row for row in json.loads(as_json.stdout)}
    assert found["sms"]["units"] == 2 and found["sms"]["revenue"] == 42.5


def test_metrics_show_the_same_figures(
    providers: Providers, priced: ManualClock, tmp_path: Path, settings_env: pytest.MonkeyPatch
) -> None:
    winback(tmp_path, priced)
    configure(settings_env, admin_token=TOKEN)
    answer = TestClient(create_app()).get("/metrics", headers=bearer())
    assert answer.status_code == 200
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }
    sms = (("channel", "sms"), ("currency", "EUR"))
    assert samples[("carillon_channel_billed_units", (("channel", "sms"),))] == 2
    assert samples[("carillon_channel_cost", sms)] == pytest.approx(0.14)
    assert samples[("carillon_channel_revenue", sms)] == 42.5
    assert samples[("carillon_channel_roi", (("channel", "sms"),))] == pytest.approx(
        (42.5 - 0.14) / 0.14
    )


def test_revenue_in_another_currency_than_the_costs_is_refused(
    providers: Providers, priced: ManualClock, tmp_path: Path, settings_env: pytest.MonkeyPatch
) -> None:
    winback(tmp_path, priced)
    configure(settings_env, cost_currency="USD")
    with pytest.raises(roi.CurrencyMismatch) as raised:
        report("channels")
    assert str(raised.value) == (
        "channel sms: revenue in EUR but costs are counted in USD (CARILLON_COST_CURRENCY); "
        "ROI needs one currency: write `currency: USD` in the goal, or set "
        "CARILLON_COST_CURRENCY=EUR with prices in EUR"
    )
    answer = CliRunner().invoke(app, ["report", "journeys"])
    assert answer.exit_code == 2
    assert "error: journey winback: revenue in EUR but costs are counted in USD" in answer.output


@pytest.mark.parametrize("value", ["euro", "eur", "EURO", ""])
def test_a_cost_currency_that_is_not_iso_4217_is_refused_at_start(
    settings_env: pytest.MonkeyPatch, value: str
) -> None:
    settings_env.setenv("CARILLON_COST_CURRENCY", value)
    get_settings.cache_clear()
    with pytest.raises(ValidationError) as raised:
        get_settings()
    assert "cost_currency" in str(raised.value)


def test_the_format_must_be_known(priced: ManualClock) -> None:
    answer = CliRunner().invoke(app, ["report", "channels", "--format", "xml"])
    assert answer.exit_code == 2 and "xml" in answer.output


RETARGET = """\
id: retarget
name: Retarget on Facebook
trigger:
  event: Cart Abandoned
goal:
  event: Order Completed
  within: 7d
  value: event.properties.total
  currency: EUR
steps:
  - send: {channel: meta_audience, audience_id: "23850000000000001"}
"""


def test_paid_social_priced_per_thousand_people_costs_its_share_of_a_thousand(
    providers: Providers,
    manual_clock: ManualClock,
    tmp_path: Path,
    settings_env: pytest.MonkeyPatch,
) -> None:
    """CARILLON_COST_PER_THOUSAND=meta_audience=6.50: four people added to the audience cost
    4 × 0.0065; one of them buys for 20 EUR."""
    configure(settings_env, cost_per_message="email=0.001", cost_per_thousand="meta_audience=6.50")
    (tmp_path / "retarget.yaml").write_text(RETARGET)
    catalog.sync_directory(tmp_path)
    people = [f"p{i}" for i in range(4)]
    now = manual_clock.now().isoformat()
    route(*(identify(p, {"email": f"{p}@example.com"}, now) for p in people))
    route(*(track(p, "Cart Abandoned", {}, now) for p in people))
    send_all()
    assert len(providers.meta.requests) == 4
    manual_clock.advance(timedelta(hours=1))
    route(track("p0", "Order Completed", {"total": 20}, manual_clock.now().isoformat()))
    meta = {row.channel: row for row in report("channels")}["meta_audience"]
    assert (meta.sent, meta.units, meta.revenue) == (4, 4, 20.0)
    assert meta.cost == pytest.approx(0.026)
    assert meta.roi == pytest.approx((20 - 0.026) / 0.026)
    [journey] = report("journeys")
    assert (journey.journey, journey.cost) == ("retarget", pytest.approx(0.026))
    answer = CliRunner().invoke(app, ["report", "channels", "--format", "json"])
    assert answer.exit_code == 0, answer.output
    found = {row["channel"]: row for row in json.loads(answer.stdout)}["meta_audience"]
    assert found["cost"] == pytest.approx(0.026) and found["revenue"] == 20


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"cost_per_thousand": "meta_audience"}, "'meta_audience' should be channel=value"),
        ({"cost_per_thousand": "meta_audience=-6.5"}, "e.g. meta_audience=6.50"),
        ({"cost_per_thousand": "meta_audience=cheap"}, "'meta_audience=cheap' should be"),
        ({"cost_per_thousand": "facebook=6.5"}, "unknown channel 'facebook'"),
        (
            {"cost_per_thousand": "meta_audience=6.5", "cost_per_message": "meta_audience=0"},
            "meta_audience also priced in CARILLON_COST_PER_MESSAGE",
        ),
    ],
)
def test_a_bad_price_per_thousand_is_refused_at_start(
    settings_env: pytest.MonkeyPatch, values: dict[str, str], problem: str
) -> None:
    configure(settings_env, values)
    with pytest.raises(ValidationError) as raised:
        get_settings()
    said = str(raised.value)
    assert "CARILLON_COST_PER_THOUSAND" in said and problem in said
