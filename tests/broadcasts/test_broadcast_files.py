"""Bad broadcast files are refused at load with where and why (file:line:column, a hint), all
of a file's mistakes at once, and nothing starts; the commands refuse what does not apply."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app import clock, scheduler
from app.broadcasts.models import Broadcast, Recipient
from app.db import session_scope
from app.main import create_app
from tests.broadcasts.conftest import Write, cli, newsletter, recipients
from tests.helpers import TOKEN, bearer, configure, order, person_at, route


def problems(path: Path) -> list[str]:
    """What `carillon broadcasts validate` says of the file, with its exit code 1."""
    result = cli("broadcasts", "validate", str(path))
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert lines[-1] == f"{len(lines) - 1} error(s)"
    return [line.removeprefix(f"{path}:") for line in lines[:-1]]


def started() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(Broadcast)) or 0


def test_the_shipped_example_is_valid(manual_clock: clock.ManualClock, write: Write) -> None:
    shipped = Path(__file__).resolve().parents[2] / "broadcasts" / "black-friday.yaml"
    result = cli("broadcasts", "validate", str(shipped))
    assert result.exit_code == 0, result.output
    assert "black-friday (segment active, email message bf-announcement" in result.stdout


def test_an_unknown_segment_is_named_with_the_closest_one(
    manual_clock: clock.ManualClock, write: Write
) -> None:
    path = write(audience="{segment: actve}")
    assert problems(path) == [
        "3:21: audience.segment: unknown segment 'actve' (hint: did you mean 'active'?)"
    ]


def test_a_time_already_past_somewhere_is_refused(
    manual_clock: clock.ManualClock, write: Write
) -> None:
    # T0 is 2026-11-02 09:00 UTC: 19:00 the same day is already tomorrow in Kiribati.
    [local] = problems(write(at="2026-11-02T19:00"))
    assert local.startswith(
        "4:5: at: 2026-11-02T19:00 is in the past for some people (it is each person's local "
        "time) (hint: write a time still to come everywhere: after 2026-11-02T23:00"
    )
    [instant] = problems(write(at="2026-11-02T08:59:00Z"))
    assert instant.startswith(  # YAML reads a time with seconds as a timestamp
        "4:5: at: 2026-11-02T08:59:00+00:00 is in the past (hint: write a time after now "
        "(2026-11-02T09:00Z)"
    )
    assert cli("broadcasts", "validate", str(write(at="2026-11-02T23:01"))).exit_code == 0


@pytest.mark.parametrize(
    ("rate", "problem"),
    [
        ("0/s", "5:7: rate: a rate of 0 sends nothing (hint: write a count per period"),
        ("fast", "5:7: rate: 'fast' is not a rate (hint: write a count per period"),
    ],
)
def test_a_rate_must_be_a_count_per_period_above_zero(
    manual_clock: clock.ManualClock, write: Write, rate: str, problem: str
) -> None:
    [found] = problems(write(extra=f"rate: {rate}\n"))
    assert found.startswith(problem)


def test_a_rate_over_the_providers_limit_is_refused(
    manual_clock: clock.ManualClock, write: Write, settings_env: pytest.MonkeyPatch
) -> None:
    configure(settings_env, rate_limits="email=100/s")
    [found] = problems(write(extra="rate: 200/s\n"))
    assert found.startswith(
        "5:7: rate: 200/s is over the email provider limit 100/s (CARILLON_RATE_LIMITS) "
        "(hint: write at most 100/s"
    )
    assert cli("broadcasts", "validate", str(write(extra="rate: 6000/m\n"))).exit_code == 0


def test_the_message_sent_must_exist_on_that_channel(
    manual_clock: clock.ManualClock, write: Write
) -> None:
    unknown = newsletter().replace("message: news}", "message: newz}")
    assert problems(write(unknown)) == [
        "5:33: send.message: unknown message 'newz' (hint: did you mean 'news'?)"
    ]
    no_sms = newsletter().replace("{channel: email,", "{channel: sms,")
    assert problems(write(no_sms)) == [
        "5:17: send.channel: message 'news' has no sms variant (hint: it has email: add `sms:` "
        "to it, or send on one of those)"
    ]


def test_every_mistake_of_a_file_is_told_at_once(
    manual_clock: clock.ManualClock, write: Write
) -> None:
    text = (
        newsletter(audience="{segment: active, channel_consent: email}", at="2026-11-05")
        .replace("name: November newsletter\n", "name: November newsletter\njourney: x\n")
        .replace('"News for {{ profile.traits.first_name }}"', '"News for {{ profile.traits. }}"')
    )
    found = problems(write(text))
    assert found[0].startswith("3:1: unknown key 'journey' in the broadcast")
    assert found[1].startswith(
        "4:11: audience needs exactly one of segment or channel_consent (hint: audience:"
    )
    assert found[2].startswith("5:5: at needs a time of day (hint: write a date and a time")
    # The message's models check its templates too, so the template is told with the rest.
    assert found[3] == "10:17: messages.news.email.subject: expected name or number"
    assert len(found) == 4
    # What the running system refuses is told beside what the file's shape gets wrong.
    both = problems(write(audience="{segment: actve}", at="2026-11-02T10:00", extra="rate: 0/s\n"))
    assert [line.split(": ")[0:2] for line in both] == [
        ["3:21", "audience.segment"],
        ["4:5", "at"],
        ["5:7", "rate"],
    ]
    fixed = newsletter().replace(
        '"News for {{ profile.traits.first_name }}"', '"News for {{ profile.traits. }}"'
    )
    [template] = problems(write(fixed))
    assert template == "9:17: messages.news.email.subject: expected name or number"


def test_a_literal_sms_over_its_max_segments_is_refused(
    manual_clock: clock.ManualClock, write: Write
) -> None:
    sms = f"    sms:\n      text: {'x' * 161}\n      max_segments: 1\n"
    assert problems(write(newsletter() + sms)) == [
        "12:13: messages.news.sms.text: the SMS is GSM-7, 161 characters, 2 segments; "
        "max_segments is 1 (hint: shorten the text (a character outside GSM-7 makes the whole "
        "SMS UCS-2), or raise max_segments)"
    ]


def test_two_files_of_one_id_are_refused(
    manual_clock: clock.ManualClock, write: Write, folder: Path
) -> None:
    write()
    write(name="copy.yaml")
    result = cli("broadcasts", "validate")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{folder / 'november.yaml'}:1:5: broadcast id 'november' is already used by "
        f"{folder / 'copy.yaml'} (hint: give each broadcast its own id)",
        "1 error(s)",
    ]


def test_start_refuses_an_unknown_id_a_bad_file_and_a_second_start(
    manual_clock: clock.ManualClock, write: Write
) -> None:
    route(person_at("ann"), order(minutes=1, user="ann"))
    result = cli("broadcasts", "start", "decembre")
    assert result.exit_code == 1
    assert "no broadcast file has the id 'decembre'" in result.stderr

    write(audience="{segment: actve}")
    result = cli("broadcasts", "start", "november")
    assert result.exit_code == 1
    assert "audience.segment: unknown segment 'actve'" in result.stderr
    assert started() == 0

    write()
    result = cli("broadcasts", "start", "november")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("started november: 1 recipients (segment active)")
    route(person_at("bob"), order(minutes=1, user="bob"))
    again = cli("broadcasts", "start", "november")
    assert again.exit_code == 1
    assert "broadcast 'november' was already started on 2026-11-02 09:00Z" in again.stderr
    assert len(recipients()) == 1  # nothing changed


def test_pause_resume_cancel_refuse_what_does_not_apply(
    manual_clock: clock.ManualClock, write: Write
) -> None:
    for verb in ("pause", "resume", "cancel", "status"):
        result = cli("broadcasts", verb, "nope")
        assert result.exit_code == 1
        assert "broadcast 'nope' was never started" in result.stderr
    write()
    assert cli("broadcasts", "start", "november").exit_code == 0
    refused = cli("broadcasts", "resume", "november")
    assert refused.exit_code == 1
    assert "broadcast 'november' is running: it cannot be resumed" in refused.stderr
    assert cli("broadcasts", "pause", "november").stdout == "november: paused\n"
    assert cli("broadcasts", "pause", "november").exit_code == 1
    assert cli("broadcasts", "cancel", "november").stdout == "november: cancelled\n"
    assert cli("broadcasts", "resume", "november").exit_code == 1


def test_status_shows_the_progress_and_why_people_were_skipped(
    manual_clock: clock.ManualClock, write: Write, settings_env: pytest.MonkeyPatch
) -> None:
    route(person_at("ann"), order(minutes=1, user="ann"))
    route(person_at("bob", email_consent="unsubscribed"), order(minutes=1, user="bob"))
    route(person_at("cyd"), order(minutes=1, user="cyd"))
    write(at="2026-11-02T10:00:00Z")
    assert cli("broadcasts", "start", "november").exit_code == 0
    before = cli("broadcasts", "status", "november")
    assert "[..............................] 0/3 (0%)" in before.stdout
    assert "next turn at 2026-11-02 10:00Z" in before.stdout

    manual_clock.advance(timedelta(hours=1))
    scheduler.send_broadcasts()
    after = cli("broadcasts", "status", "november").stdout
    assert "november: November newsletter (done)" in after
    assert "[##############################] 3/3 (100%)" in after
    assert "queued 2  skipped 1  pending 0" in after
    assert "skipped 1: no consent (" in after
    listing = cli("broadcasts", "list").stdout
    assert "november" in listing and "done" in listing and "3/3" in listing

    configure(settings_env, admin_token=TOKEN)
    client = TestClient(create_app())
    [shown] = client.get("/ops/broadcasts", headers=bearer()).json()
    assert (shown["id"], shown["state"], shown["total"], shown["queued"]) == (
        "november",
        "done",
        3,
        2,
    )
    assert client.get("/ops/broadcasts/november", headers=bearer()).json()["skipped"] == 1
    missing = client.get("/ops/broadcasts/nope", headers=bearer())
    assert missing.status_code == 404
    assert "never started" in missing.text
    assert client.get("/ops/broadcasts").status_code == 401
    panel = client.get("/ops/panels", headers=bearer()).text
    assert '<tr data-broadcast="november">' in panel
    assert '<td class="text" data-field="state">done</td>' in panel
    assert '<progress max="3" value="3"></progress> 3/3</td>' in panel
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Recipient)) == 3


def test_a_journey_sent_must_be_live_and_alone(
    manual_clock: clock.ManualClock, write: Write
) -> None:
    body = newsletter().split("messages:")[0]
    unknown = body.replace(
        "send: {channel: email, message: news}", "send: {journey: cart-abandonmnt}"
    )
    assert problems(write(unknown)) == [
        "5:17: send.journey: no live journey 'cart-abandonmnt' (hint: carillon journeys list "
        "shows the journeys the system runs (live))"
    ]
    both = body.replace("message: news}", "message: news, journey: winback}")
    found, unknown_too = problems(write(both))
    assert found.startswith("5:7: send is either a journey or a message, not both (hint:")
    assert unknown_too.startswith("5:48: send.journey: no live journey 'winback'")
    neither = body.replace("{channel: email, message: news}", "{channel: email}")
    [found] = problems(write(neither))
    assert found.startswith("5:7: send needs channel and message, or journey (hint:")
    no_messages = body  # a message send without `messages:`
    [found] = problems(write(no_messages))
    assert found == "5:33: send.message: unknown message 'news' (hint: name it under messages:)"


def test_an_id_must_be_short_lowercase_text(manual_clock: clock.ManualClock, write: Write) -> None:
    [long] = problems(write(id="n" * 81))
    assert long.startswith("1:5: id must be at most 80 characters")
    [shouting] = problems(write(id="November"))
    assert shouting.startswith("1:5: id must be lowercase letters, digits, - and _")


def test_the_json_schema_describes_the_file_for_editors() -> None:
    result = cli("broadcasts", "schema")
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    assert {"id", "name", "audience", "at", "rate", "send", "messages"} <= set(schema["properties"])
    assert set(schema["required"]) == {"id", "name", "audience", "at", "send"}
