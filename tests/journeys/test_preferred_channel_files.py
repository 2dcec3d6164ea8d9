"""`send: {channel: preferred, message: …}` in journey files: what it needs (a message of
`messages:`, nothing inline), and that the message has a variant for a channel the segments
list, each mistake at `file:line:column` with a hint; the language's models agree."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from app.journeys.definition import PREFERRED, SendStep
from app.journeys.language.files import Issue, JourneyInvalid, parse_journey
from tests.helpers import REPO, model_issues

HEAD = "id: demo\nname: Demo\ntrigger:\n  event: Signed Up\n"  # lines 1-4
MESSAGES = """\
messages:
  hello:
    email: {subject: Hello, html: "<p>Hello</p>"}
"""  # lines 5-7
SEGMENTS = {"frequent-abandoners": ("sms", "email"), "vip": ("sms",), "new": ("email",)}


def issues_of(text: str, segments: dict[str, tuple[str, ...]] | None = SEGMENTS) -> list[Issue]:
    with pytest.raises(JourneyInvalid) as info:
        parse_journey(text, "j.yaml", segments)
    return info.value.issues


def only(text: str, segments: dict[str, tuple[str, ...]] | None = SEGMENTS) -> Issue:
    [issue] = issues_of(text, segments)
    return issue


def test_a_preferred_send_is_a_message_whose_channel_is_chosen_later() -> None:
    text = HEAD + MESSAGES + "steps:\n  - send: {channel: preferred, message: hello}\n"
    journey = parse_journey(text, "j.yaml", SEGMENTS)
    [step] = journey.steps
    assert isinstance(step, SendStep) and step.preferred
    assert (step.channel, step.message, dict(step.content)) == (PREFERRED, "hello", {})
    assert model_issues(text) == []


def test_without_a_message_it_says_to_name_one() -> None:
    issue = only(HEAD + MESSAGES + "steps:\n  - send: {channel: preferred}\n")
    assert (issue.line, issue.column) == (9, 5)
    assert issue.message == "send (preferred) is missing required key 'message'"
    assert issue.hint is not None and "send: {channel: preferred, message: reminder}" in issue.hint
    assert model_issues(HEAD + MESSAGES + "steps:\n  - send: {channel: preferred}\n") != []


def test_content_written_in_the_step_goes_under_messages() -> None:
    text = HEAD + MESSAGES + "steps:\n  - send: {channel: preferred, message: hello, text: Hi}\n"
    issue = only(text)
    assert (issue.line, issue.column) == (9, 48)
    assert issue.message == "unknown key 'text' in send (preferred)"
    assert issue.hint == (
        "channel: preferred sends a message of messages: (a variant per channel): "
        "put text under messages:"
    )
    assert model_issues(text) != []


def test_remove_on_exit_needs_a_fixed_channel() -> None:
    text = (
        HEAD
        + MESSAGES
        + "steps:\n  - send: {channel: preferred, message: hello, remove_on_exit: true}\n"
    )
    issue = only(text)
    assert issue.message == "unknown key 'remove_on_exit' in send (preferred)"
    assert issue.hint == "remove_on_exit needs a fixed channel: channel: meta_audience"
    assert model_issues(text) != []


def test_an_unknown_message_is_named_with_the_closest_one() -> None:
    issue = only(HEAD + MESSAGES + "steps:\n  - send: {channel: preferred, message: helo}\n")
    assert (issue.line, issue.column) == (9, 41)
    assert (issue.message, issue.hint) == ("unknown message 'helo'", "did you mean 'hello'?")


def test_a_message_with_no_variant_for_any_listed_channel_is_refused_where_it_is_named() -> None:
    text = (
        HEAD
        + "messages:\n  hello:\n    whatsapp: {text: Hello}\n"
        + "steps:\n  - send: {channel: preferred, message: hello}\n"
    )
    issue = only(text)
    assert str(issue) == (
        "j.yaml:9:41: channel preferred: message 'hello' has no variant for a channel any "
        "segment lists (hint: it has whatsapp; the channels listed are sms, email: add sms: "
        "under messages.hello)"
    )
    parse_journey(text, "j.yaml")  # read back from the database: not checked again
    parse_journey(text, "j.yaml", {"new": ("whatsapp",)})


def test_a_segment_triggered_journey_needs_a_variant_for_its_segment_channels() -> None:
    text = (
        "id: demo\nname: Demo\ntrigger: {segment: vip}\n"
        + MESSAGES
        + "steps:\n  - send: {channel: preferred, message: hello}\n"
    )
    issue = only(text)
    assert (issue.line, issue.column) == (8, 41)
    assert issue.message == (
        "channel preferred: message 'hello' has no variant for a channel segment vip lists"
    )
    assert issue.hint == "it has email; the channels listed are sms: add sms: under messages.hello"
    # A trigger segment listing no channels leaves it to the person's other segments.
    parse_journey(text, "j.yaml", {**SEGMENTS, "vip": ()})


def test_with_no_segment_listing_channels_it_says_to_give_one_some() -> None:
    text = HEAD + MESSAGES + "steps:\n  - send: {channel: preferred, message: hello}\n"
    issue = only(text, {"new": ()})
    assert issue.message == (
        "channel preferred: message 'hello' has no variant for a channel any segment lists"
    )
    assert issue.hint == (
        "no segment lists channels yet: give one channels: [email] in the segments directory"
    )


def test_journeys_validate_checks_against_the_segments_directory(
    tmp_path: Path, settings_env: pytest.MonkeyPatch
) -> None:
    journeys = tmp_path / "journeys"
    journeys.mkdir()
    segments = tmp_path / "segments"
    segments.mkdir()
    (segments / "vip.yaml").write_text(
        "id: vip\nname: VIP\nwhen: profile.traits.vip == true\nchannels: [sms]\n", encoding="utf-8"
    )
    file = journeys / "hello.yaml"
    file.write_text(HEAD + MESSAGES + "steps:\n  - send: {channel: preferred, message: hello}\n")
    settings_env.setenv("CARILLON_SEGMENTS_DIR", str(segments))

    result = CliRunner().invoke(app, ["journeys", "validate", str(journeys)])
    assert result.exit_code == 1
    assert f"{file}:9:41: channel preferred: message 'hello' has no variant" in result.stderr

    (segments / "vip.yaml").write_text(
        "id: vip\nname: VIP\nwhen: profile.traits.vip == true\nchannels: [sms, email]\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["journeys", "validate", str(journeys)])
    assert result.exit_code == 0, result.output


def test_the_shipped_rescue_journey_prefers_the_segment_channels() -> None:
    path = REPO / "journeys" / "abandoner_rescue.yaml"
    text = path.read_text(encoding="utf-8")
    journey = parse_journey(text, str(path), SEGMENTS)
    sends = [s for s in journey.all_steps() if isinstance(s, SendStep)]
    assert [(s.channel, s.message) for s in sends] == [(PREFERRED, "rescue")]
    assert set(journey.messages["rescue"]) == {"sms", "email"}
