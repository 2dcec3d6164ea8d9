"""The set-based backfill gives what routing gives event by event: the same values, the same
memberships, the same window timers and kept events, for every aggregate kind (in SQL or
folded in Python), windows half passed, values of every JSON type, and people with no
events."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from app import clock, scheduler
from app.db import session_scope
from app.segments import backfill, bulk, catalog
from app.segments.loader import parse_segment
from app.segments.models import ComputedTrait, TraitEvent
from tests.helpers import T0, person_at, profile_of, route

EVERY_KIND = """id: every-kind
name: Every aggregate kind
traits:
  v_count: {count: Viewed}
  v_count_7d: {count: Viewed, within: 7d}
  v_sum: {sum: Viewed, of: properties.price}
  v_sum_7d: {sum: Viewed, of: properties.price, within: 7d}
  v_min: {min: Viewed, of: properties.price}
  v_min_7d: {min: Viewed, of: properties.price, within: 7d}
  v_max: {max: Viewed, of: properties.price}
  v_max_7d: {max: Viewed, of: properties.price, within: 7d}
  v_first: {first: Viewed, of: properties.sku}
  v_first_at_7d: {first: Viewed, within: 7d}
  v_last: {last: Viewed}
  v_last_7d: {last: Viewed, of: properties.sku, within: 7d}
  v_distinct: {distinct: Viewed, of: properties.sku}
  v_distinct_7d: {distinct: Viewed, of: properties.sku, within: 7d}
  v_dear: {count: Viewed, where: event.properties.price >= 20}
  v_dear_7d: {max: Viewed, of: properties.price, within: 7d, where: event.properties.price >= 20}
  v_twice: {compute: profile.computed.v_count * 2}
when: profile.computed.v_count_7d >= 1 && profile.computed.v_dear >= 1
"""
# A rule that reads more than computed traits: the whole person is read for it.
BY_NAME = """id: named-viewers
name: Alices who viewed twice
when: profile.traits.first_name == "Alice" && profile.computed.v_count >= 2
"""
STAGES = """id: stages
name: Stages
stages:
  - id: recent
    when: profile.computed.v_count_7d >= 2
  - id: rest
"""
DAY = 24 * 60
# (minutes from T0, properties): numbers, texts, null, missing, true, objects; two pairs at
# the same moment; some out of the 7-day window from the start, some leaving it 2 days on.
VIEWS: list[tuple[int, dict[str, Any]]] = [
    (-10 * DAY, {"price": 10, "sku": "a"}),
    (-8 * DAY, {"price": "cheap", "sku": "b"}),
    (-6 * DAY, {"price": 30, "sku": "a"}),
    (-6 * DAY, {"price": 25.5, "sku": "c"}),
    (-3 * DAY, {"price": None, "sku": 1}),
    (-3 * DAY + 1, {"sku": 1.0}),
    (-DAY, {"price": True, "sku": True}),
    (-60, {"price": "dear", "sku": "b"}),
    (-59, {"price": 40.5, "sku": {"x": 1}}),
    (-1, {"price": 20, "sku": ["l"]}),
]


def chosen(index: int) -> list[tuple[int, dict[str, Any]]]:
    return [view for bit, view in enumerate(VIEWS) if (index * 173) >> bit & 1]


def history(user: str, index: int) -> list[dict[str, Any]]:
    """Everybody a different subset of the views (nobody's for the first), plus an event
    no trait reads."""
    events = [person_at(user)]
    for minutes, properties in chosen(index):
        stamp = (T0 + timedelta(minutes=minutes)).isoformat()
        events.append(
            {
                "type": "track",
                "userId": user,
                "event": "Viewed",
                "timestamp": stamp,
                "properties": properties,
            }
        )
    if index % 3:
        events.append(
            {"type": "track", "userId": user, "event": "Other", "timestamp": T0.isoformat()}
        )
    return events


def state(user: str) -> str:
    """What anybody reads of the person, with their window timers and kept events, as text
    so that 1 and 1.0 differ."""
    person = profile_of("user_id", user)
    with session_scope() as session:
        timers = session.execute(
            select(ComputedTrait.name, ComputedTrait.expires_at).where(
                ComputedTrait.profile_id == person["id"], ComputedTrait.expires_at.is_not(None)
            )
        ).all()
        kept = session.execute(
            select(TraitEvent.name, TraitEvent.at, TraitEvent.value)
            .where(TraitEvent.profile_id == person["id"])
            .order_by(TraitEvent.name, TraitEvent.at, TraitEvent.id)
        ).all()
    seen = {
        "computed": person["computed"],
        "segments": person["segments"],
        "stage": person["lifecycle_stage"],
        "timers": sorted((name, at.isoformat()) for name, at in timers),
        "kept": [(name, at.isoformat(), value) for name, at, value in kept],
    }
    return json.dumps(seen, sort_keys=True)


def directory(folder: Path) -> Path:
    folder.mkdir()
    for name, text in {"a.yaml": EVERY_KIND, "b.yaml": BY_NAME, "c.yaml": STAGES}.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_every_kind_is_summed_up_in_sql_or_folded_in_python() -> None:
    traits = parse_segment(EVERY_KIND, "a.yaml").aggregates
    in_sql = sorted(t.name for t in traits if bulk.in_sql(t))
    assert in_sql == [
        "v_count",
        "v_count_7d",
        "v_first",
        "v_last",
        "v_last_7d",
        "v_max",
        "v_max_7d",
        "v_min",
        "v_min_7d",
    ]


def test_a_backfill_gives_what_routing_gives(
    manual_clock: clock.ManualClock, tmp_path: Path
) -> None:
    people = range(24)
    for index in people:  # routed before the files existed: only the backfill reaches them
        route(*history(f"old{index}", index))
    assert catalog.sync_directory(directory(tmp_path / "segments")) == []
    for index in people:  # the same histories routed with the files loaded
        route(*history(f"new{index}", index))
    routed = {index: state(f"new{index}") for index in people}
    for index in people:
        if not chosen(index):  # routing derives on a counted event; the backfill for everybody
            seen = json.loads(routed[index])
            seen["computed"]["v_twice"] = 0
            routed[index] = json.dumps(seen, sort_keys=True)
    assert state("old5") != routed[5]

    assert backfill.backfill_pending(batch_size=7) == 3 * 2 * len(people)
    for index in people:
        assert state(f"old{index}") == routed[index], index
        assert state(f"new{index}") == routed[index], index  # a routed person: rebuilt the same

    # Some values, so that "the same" is not "the same nothing". A running min or max keeps
    # the kind of its first usable value (a text before any number); a window's, numbers.
    computed = {index: json.loads(state(f"old{index}"))["computed"] for index in (2, 3, 6, 10)}
    assert computed[3]["v_min"] == 10 and computed[3]["v_max"] == 30
    assert computed[6]["v_min"] == computed[6]["v_max"] == "cheap"
    assert (computed[10]["v_min"], computed[10]["v_max"], computed[10]["v_min_7d"]) == (
        "cheap",
        "dear",
        20,
    )
    assert computed[2]["v_sum"] == 66.0 and computed[2]["v_distinct"] == 4
    assert json.loads(state("old0"))["computed"]["v_count"] == 0

    # The timers the backfill set fire as routing's do: windows pass, values follow.
    manual_clock.advance(timedelta(days=2))
    scheduler.expire_windows()
    for index in people:
        assert state(f"old{index}") == state(f"new{index}"), index
