"""A segment rule that reads computed traits only is evaluated once per combination of their
values and its answer reused (CEL costs milliseconds a rule); a rule that reads anything else
of the person is evaluated for each person."""

from __future__ import annotations

from pathlib import Path

import pytest

from app import clock
from app.journeys.conditions import compile_condition
from app.segments import backfill, catalog
from app.segments.expressions import computed_only
from tests.helpers import cart, person_at, profile_of, route


@pytest.mark.parametrize(
    ("rule", "reads"),
    [
        ("has(profile.computed.b) && profile.computed.a >= 2", ("a", "b")),
        ('profile.computed["a"] > 1 && [1].exists(v, v > 0)', ("a",)),
        ("profile.computed.a.b == 1", ("a",)),
        ("true", ()),
        ("size(profile.computed) > 0", None),  # the whole map: every trait counts
        ('profile.computed.a >= 1 && profile.traits.plan == "pro"', None),
        ('profile.email.endsWith("@example.com")', None),
    ],
)
def test_what_a_rule_s_answer_depends_on(rule: str, reads: tuple[str, ...] | None) -> None:
    assert computed_only(compile_condition(rule, ("profile",))) == reads


def write(folder: Path, name: str, when: str, traits: str = "") -> None:
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.yaml").write_text(
        f"id: {name}\nname: {name}\n{traits}when: {when}\n", encoding="utf-8"
    )


TRAITS = 'traits:\n  bench_carts: {count: "Cart Abandoned"}\n'


def test_people_with_the_same_values_share_an_answer_and_other_reads_are_not_shared(
    manual_clock: clock.ManualClock, tmp_path: Path
) -> None:
    folder = tmp_path / "segments"
    write(folder, "carts", "profile.computed.bench_carts >= 1", TRAITS)
    write(folder, "pro-carts", 'profile.computed.bench_carts >= 1 && profile.traits.plan == "pro"')
    assert catalog.sync_directory(folder) == []
    assert backfill.backfill_pending() == 0  # nobody there yet
    route(person_at("ann", plan="pro"), cart(10, user="ann"))
    route(person_at("bob", plan="free"), cart(10, user="bob"))  # same count, another plan
    route(person_at("cid", plan="pro"))  # no cart
    assert profile_of("user_id", "ann")["segments"] == ["carts", "pro-carts"]
    assert profile_of("user_id", "bob")["segments"] == ["carts"]
    assert profile_of("user_id", "cid")["segments"] == []

    # The same rule text in an edited file, backfilled over them in one batch: same answers.
    write(folder, "carts", "profile.computed.bench_carts >= 1 ", TRAITS)
    assert catalog.sync_directory(folder) == []
    assert backfill.backfill_pending() == 3
    assert [profile_of("user_id", u)["segments"] for u in ("ann", "bob", "cid")] == [
        ["carts", "pro-carts"],
        ["carts"],
        [],
    ]
