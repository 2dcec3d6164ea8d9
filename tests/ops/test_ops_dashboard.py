"""The ops dashboard in a real headless Chromium (Debian's `chromium`, driven by Playwright).

Carillon's API runs in a thread on a real socket; the queue worker is this test's. The test
logs in with the admin token, watches the events queue fill while the worker is paused and
drain once it runs, clicks Replay on the SMS Twilio refused, and saves a screenshot under
tests/artifacts/.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from app.analytics import funnel
from app.clock import ManualClock
from app.db import session_scope
from app.delivery.models import Delivery
from app.journeys import catalog
from app.main import create_app
from tests.helpers import (
    REPO,
    TOKEN,
    Pipeline,
    Providers,
    configure,
    newsletter_signup,
    route,
    run_ab_test,
    serving,
    track,
)
from tests.processes import Process, wait_until
from tests.providers.server import unused_port
from tests.providers.twilio import TwilioServer, twilio_error

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 20_000


@pytest.fixture
def carillon_url(admin: str) -> Iterator[str]:
    with serving(create_app()) as url:
        yield url


@pytest.fixture
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), (
        f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)"
    )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def cell(page: Page, queue: str, field: str) -> Any:
    return page.locator(f'#queues tr[data-queue="{queue}"] td[data-field="{field}"]')


def test_dashboard_shows_queues_filling_and_draining_and_replays_a_dead_letter(
    carillon_url: str, browser: Browser, pipeline: Pipeline, twilio: TwilioServer
) -> None:
    catalog.sync_directory(REPO / "journeys")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})

    page.goto(f"{carillon_url}/ops")
    expect(page).to_have_url(f"{carillon_url}/ops/login")
    page.fill("#token", "not-the-token")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_have_text("wrong admin token")
    page.fill("#token", TOKEN)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{carillon_url}/ops")
    expect(page.locator("#no-dead-letters")).to_be_visible()

    # The queue fills: three shops' calls, nobody consuming.
    pipeline.worker.pause()
    # A refusal ops can fix (the country's geo permission) and then replay.
    refusal = "Permission to send an SMS has not been enabled for the region of the 'To' number."
    twilio.fail_next(400, twilio_error(400, 21408, refusal))
    for user, phone in (("ada", "+33611111111"), ("bea", "+33622222222"), ("cyd", "+33633333333")):
        body = {"batch": newsletter_signup(user, phone)}
        answer = httpx.post(f"{carillon_url}/v1/batch", json=body, auth=("test-key", ""))
        assert answer.status_code == 200
    expect(cell(page, "events", "ready")).to_have_text("3", timeout=WAIT_MS)
    expect(cell(page, "events", "backlog")).to_have_text("6", timeout=WAIT_MS)

    # ... and drains once the worker runs: three welcome SMS, the first refused by Twilio.
    pipeline.worker.resume()
    pipeline.drain()
    expect(cell(page, "events", "ready")).to_have_text("0", timeout=WAIT_MS)
    expect(cell(page, "events", "backlog")).to_have_text("0", timeout=WAIT_MS)
    expect(cell(page, "sms", "backlog")).to_have_text("0", timeout=WAIT_MS)
    sms = page.locator('#channels tr[data-channel="sms"]')
    expect(sms.locator('td[data-field="sent"]')).to_have_text("2", timeout=WAIT_MS)
    expect(sms.locator('td[data-field="failed"]')).to_have_text("1")
    welcome = page.locator('#journeys table[data-journey="newsletter-welcome"] tr[data-step="0"]')
    expect(welcome).to_contain_text("send sms")
    dead_row = page.locator("#dead-letters tr[data-delivery]")
    expect(dead_row).to_have_count(1, timeout=WAIT_MS)
    expect(dead_row).to_contain_text("not been enabled for the region")

    # Replay: the SMS goes out again, the dead letter disappears.
    failed_id = dead_row.get_attribute("data-delivery")
    dead_row.get_by_role("button", name="Replay").click()
    pipeline.drain()
    expect(page.locator("#no-dead-letters")).to_be_visible(timeout=WAIT_MS)
    expect(sms.locator('td[data-field="sent"]')).to_have_text("3", timeout=WAIT_MS)
    expect(sms.locator('td[data-field="failed"]')).to_have_text("0")
    expect(cell(page, "sms", "in_flight")).to_have_text("0", timeout=WAIT_MS)
    expect(cell(page, "sms", "backlog")).to_have_text("0", timeout=WAIT_MS)
    assert len(twilio.requests) == 4  # three SMS, one refused and replayed once
    assert failed_id is not None
    with session_scope() as session:
        replayed = session.get(Delivery, int(failed_id))
        assert replayed is not None and replayed.status == "sent" and replayed.attempts == 1
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ops-dashboard.png"), full_page=True)
    assert (ARTIFACTS / "ops-dashboard.png").stat().st_size > 10_000


def test_the_search_box_finds_a_person_and_shows_their_page(
    carillon_url: str, browser: Browser, pipeline: Pipeline
) -> None:
    catalog.sync_directory(REPO / "journeys")
    body = {"batch": newsletter_signup("ada", "+33611111111")}
    assert httpx.post(f"{carillon_url}/v1/batch", json=body, auth=("test-key", "")).is_success
    pipeline.drain()
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{carillon_url}/ops/person?id=ada")
    expect(page).to_have_url(f"{carillon_url}/ops/login")  # a person's page needs the token
    page.fill("#token", TOKEN)
    page.click("button[type=submit]")

    page.fill("#person-search", "phone:+33611111111")
    page.press("#person-search", "Enter")
    expect(page).to_have_url(re.compile(r"/ops/person\?id=phone%3A%2B33611111111$"))
    expect(page.locator('#identities tr[data-kind="user_id"]')).to_contain_text("ada")
    expect(page.locator('#traits tr[data-trait="first_name"]')).to_contain_text('"Ada"')
    sms = page.locator('#consent tr[data-channel="sms"] td[data-field="allowed"]')
    expect(sms).to_have_text("yes")
    email = page.locator('#consent tr[data-channel="email"] td[data-field="allowed"]')
    expect(email).to_have_text("yes")
    expect(page.locator("#events tr[data-event]")).to_have_count(2)
    delivery = page.locator("#deliveries tr[data-delivery]")
    expect(delivery).to_contain_text("newsletter-welcome")
    expect(delivery.locator('td[data-field="status"]')).to_have_text("dry_run")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ops-person.png"), full_page=True)

    page.fill("#person-search", "email:nobody@example.org")
    page.press("#person-search", "Enter")
    expect(page.locator("#person-error")).to_contain_text("nobody is known as")
    page.fill("#person-search", "email:")
    page.press("#person-search", "Enter")
    expect(page.locator("#person-error")).to_contain_text("names nobody")


def log_in(page: Page, url: str) -> None:
    page.goto(f"{url}/ops/login")
    page.fill("#token", TOKEN)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{url}/ops")


def test_the_experiments_panel_shows_each_arm_with_its_interval_and_a_verdict(
    carillon_url: str, browser: Browser, manual_clock: ManualClock, tmp_path: Path
) -> None:
    people = [f"p{i:02}" for i in range(30)]
    run_ab_test(tmp_path, manual_clock, people, people[:6])
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    log_in(page, carillon_url)

    table = page.locator('#experiments table[data-experiment="cart-winback"]')
    expect(table.locator("tr[data-arm]")).to_have_count(3)
    arms = {}
    for name in ("A", "B", "holdout"):
        row = table.locator(f'tr[data-arm="{name}"]')
        arms[name] = int(row.locator('td[data-field="recipients"]').inner_text())
        # Arms are drawn at random: a 10 % holdout of 30 is empty one run in 25.
        interval = "%, " if arms[name] else "n/a"
        expect(row.locator('td[data-field="interval"]')).to_contain_text(interval)
    assert sum(arms.values()) == 30
    # Each arm someone took: its rate drawn as a dot on its 95 % interval.
    taken = sum(1 for size in arms.values() if size)
    dots = page.locator('#experiments [data-arms="cart-winback"] svg.arms circle')
    expect(dots).to_have_count(taken)
    revenue = table.locator('td[data-field="revenue"]')  # every order is 30 EUR
    assert sum(float(text.replace(",", "")) for text in revenue.all_inner_texts()) == 6 * 30
    expect(table.locator('tr[data-arm="holdout"]')).to_contain_text("control")
    verdict = page.locator('#experiments [data-verdict="cart-winback"]')
    early = "too early to call: every arm needs at least 500 people"
    expect(verdict).to_contain_text(f"{early} (the smallest has {min(arms.values())})")

    # Live: more people buy, the panel follows without a reload.
    converted = table.locator('tr[data-arm] td[data-field="conversions"]')
    before = sum(int(text) for text in converted.all_inner_texts())
    assert before == 6
    route(*(track(p, "Order Completed", {}, manual_clock.now().isoformat()) for p in people[6:12]))
    page.wait_for_function(
        """() => [...document.querySelectorAll('#experiments td[data-field="conversions"]')]
              .reduce((sum, cell) => sum + Number(cell.textContent), 0) === 12""",
        timeout=WAIT_MS,
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator("#experiments").screenshot(path=str(ARTIFACTS / "ops-experiments.png"))
    assert (ARTIFACTS / "ops-experiments.png").stat().st_size > 5_000


def test_the_charts_draw_the_funnel_the_arms_the_roi_and_the_sends_per_minute(
    carillon_url: str,
    browser: Browser,
    providers: Providers,
    manual_clock: ManualClock,
    tmp_path: Path,
    settings_env: pytest.MonkeyPatch,
) -> None:
    """An A/B test whose e-mails went out at 10:00 and ten buyers at 10:30: each chart writes
    the figures `carillon report` prints."""
    configure(settings_env, cost_per_message="email=0.5")
    people = [f"p{i:02}" for i in range(40)]
    run_ab_test(tmp_path, manual_clock, people, people[:10], send=True)
    with session_scope() as session:
        rows = {f.arm: f for f in funnel.journeys(session) if f.journey == "cart-winback"}
    whole = rows[funnel.ALL_ARMS]
    held_out = rows["holdout"].converted if "holdout" in rows else 0
    emails = whole.reached  # one e-mail per trip in arms A and B
    assert (whole.entered, whole.converted) == (40, 10) and 0 < emails < 40
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    log_in(page, carillon_url)

    chart = page.locator('#journeys [data-funnel="cart-winback"] svg.funnel')
    expect(chart).to_be_visible()
    shown = chart.locator("text").all_text_contents()
    assert shown == [
        "entered", "40",
        "sent a message", f"{emails} ({emails / 40:.0%})",
        "converted", "10 (25%)",
    ]  # fmt: skip
    bar = {s: float(chart.locator(f'rect[data-stage="{s}"]').get_attribute("width") or "")
           for s in ("entered", "sent a message", "converted")}  # fmt: skip
    assert bar["converted"] == bar["entered"] / 4 > 0

    arms = page.locator('#experiments [data-arms="cart-winback"] svg.arms')
    expect(arms.locator("circle")).to_have_count(3)
    expect(arms.locator("line.interval")).to_have_count(3)
    expect(arms).to_contain_text("holdout (control)")
    expect(page.locator('#experiments [data-verdict="cart-winback"]')).to_contain_text(
        "too early to call"
    )

    money = page.locator("#roi-chart svg.roi")
    revenue, cost = 30.0 * (10 - held_out), 0.5 * emails
    expect(money).to_contain_text(f"revenue {revenue:,.2f} EUR")
    expect(money).to_contain_text(f"cost {cost:,.2f} EUR")
    expect(money).to_contain_text(f"ROI {(revenue - cost) / cost * 100:+.1f}%")

    per_minute = page.locator("#sends svg.sends")
    expect(per_minute.locator('polyline[data-channel="email"]')).to_have_count(1)
    expect(per_minute).to_contain_text(
        f"email: {emails} in the last hour, at most {emails} a minute"
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ops-charts.png"), full_page=True)
    assert (ARTIFACTS / "ops-charts.png").stat().st_size > 10_000

    # An hour later the sends have left the chart, which says so.
    manual_clock.advance(timedelta(hours=1))
    expect(page.locator("#sends")).to_contain_text("No sends in the last hour", timeout=WAIT_MS)


def test_a_newcomer_sees_what_the_journeys_did_after_make_run(
    browser: Browser, tmp_path: Path
) -> None:
    """`make run` as README tells it: `carillon serve` with no setting but quiet hours prints the
    dashboard's address and a token for this run; the README's curl calls then show up as
    deliveries on the dashboard."""
    port = unused_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARILLON_")}
    env |= {
        "CARILLON_DATABASE_URL": f"sqlite:///{tmp_path}/carillon.db",
        "CARILLON_JOURNEYS_DIR": str(REPO / "journeys"),
        # The one setting changed: the default SMS quiet hours (21:00-08:00) would make the
        # SMS wait for the morning when the suite runs at night.
        "CARILLON_QUIET_HOURS": "",
    }
    serve = Process(["serve", "--host", "127.0.0.1", "--port", str(port)], env, tmp_path / "log")
    try:
        printed: list[str] = []

        def token_printed() -> bool:
            printed[:] = re.findall(r"Ops dashboard: (\S+) \(admin token: (\S+)\)", _read(serve))
            return bool(printed)

        wait_until("serve prints the dashboard", token_printed, 60, [serve])
        url, token = printed[0]
        assert url == f"http://127.0.0.1:{port}/ops"
        base = f"http://127.0.0.1:{port}"
        wait_until("serve is up", lambda: _up(f"{base}/healthz"), 60, [serve])
        traits = {"email": "lea@example.com", "phone": "+33612345678", "sms_opt_in": True}
        for path, body in (
            ("identify", {"userId": "u1", "traits": traits}),
            ("track", {"userId": "u1", "event": "Newsletter Subscribed"}),
        ):
            assert httpx.post(f"{base}/v1/{path}", json=body, auth=("dev", "")).is_success

        page = browser.new_page()
        page.goto(url)
        page.fill("#token", token)
        page.click("button[type=submit]")
        row = page.locator("#recent tr[data-recent]").first
        expect(row).to_contain_text("newsletter-welcome", timeout=WAIT_MS)
        expect(row.locator('td[data-field="status"]')).to_have_text("dry_run", timeout=WAIT_MS)
        expect(row).to_contain_text("would have gone to +33612345678")
        # The shipped segment files, backfilled over the people there by serve's scheduler.
        segment = page.locator('#segments tr[data-segment="frequent-abandoners"]')
        backfill = segment.locator('td[data-field="backfill"]')
        expect(backfill).to_have_text("up to date", timeout=WAIT_MS)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "ops-dashboard-make-run.png"), full_page=True)
    finally:
        serve.stop()
    assert (tmp_path / "carillon.db.secret").exists()  # made on first start, kept beside


def _read(process: Process) -> str:
    return process.log.read_text(errors="replace")


def _up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
