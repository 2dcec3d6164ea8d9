"""What segments make of a person is read where the person is: journey conditions, the
profile API; and an erasure takes it away with the rest."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app import clock
from app.db import session_scope
from app.main import create_app
from app.segments import catalog
from app.segments.models import ComputedTrait, Membership, TraitEvent
from tests.helpers import REPO, cart, configure, instances, journeys, order, person_at, route

TOKEN = "segments-admin-token-0123456789"
VIP_ONLY = """\
id: vip-thanks
name: VIPs who abandon a cart get a call-back offer
trigger:
  event: Cart Abandoned
  when: profile.lifecycle_stage == "vip" && profile.computed.carts_30d >= 1
    && "frequent-abandoners" in profile.segments == false
steps:
  - send: {channel: email, subject: "Merci", html: "<p>Merci</p>", text: "Merci"}
"""


@pytest.fixture
def shipped(manual_clock: clock.ManualClock) -> None:
    assert catalog.sync_directory(REPO / "segments") == []


def test_journey_conditions_read_the_stage_the_traits_and_the_segments(
    shipped: None, tmp_path: Path
) -> None:
    journeys(tmp_path, VIP_ONLY)
    route(person_at(), cart(30, minutes=0))
    assert instances() == []  # new, not vip
    route({**order(minutes=1), "properties": {"total": 900}}, cart(30, minutes=2))
    [trip] = instances()
    assert trip.journey_id == "vip-thanks"


def test_the_profile_api_answers_computed_traits_segments_and_stage(
    shipped: None, settings_env: pytest.MonkeyPatch
) -> None:
    configure(settings_env, admin_token=TOKEN)
    route(person_at(), cart(30, minutes=0), cart(45, minutes=1))
    client = TestClient(create_app())
    headers = {"Authorization": f"Bearer {TOKEN}"}
    person = client.get("/v1/profiles/alice", headers=headers).json()
    assert person["computed"]["carts_30d"] == 2
    assert person["computed"]["cart_value_max_30d"] == 45
    assert person["segments"] == ["frequent-abandoners"]
    assert person["lifecycle_stage"] == "new"

    erased = client.delete("/v1/profiles/alice", headers=headers)
    assert erased.status_code == 200, erased.text
    with session_scope() as session:
        for table in (ComputedTrait, TraitEvent, Membership):
            assert session.scalar(select(func.count()).select_from(table)) == 0, table
