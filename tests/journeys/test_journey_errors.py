"""Every kind of mistake in a journey file is reported at `file:line:column`, all at once."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from app.journeys.definition import SendStep
from app.journeys.language.files import (
    Issue,
    JourneyInvalid,
    load_directory,
    load_path,
    parse_journey,
)
from tests.channels.third_party import push_channel

HEAD = """\
id: demo
name: Demo
trigger:
  event: Signed Up
"""  # lines 1-4; the snippets below start at line 5
KINDS = "wait, wait_for, branch, split, update_profile, send, exit"


def issues_of(text: str) -> list[Issue]:
    with pytest.raises(JourneyInvalid) as info:
        parse_journey(textwrap.dedent(text), "j.yaml")
    return info.value.issues


def only(text: str) -> Issue:
    issues = issues_of(text)
    assert len(issues) == 1, [str(i) for i in issues]
    return issues[0]


def where(issue: Issue) -> tuple[int, int]:
    return issue.line, issue.column


def test_issue_string_form() -> None:
    issue = Issue("journeys/x.yaml", 3, 7, "unknown key 'foo'", "allowed: a, b")
    assert str(issue) == "journeys/x.yaml:3:7: unknown key 'foo' (hint: allowed: a, b)"
    assert str(Issue("x.yaml", 1, 1, "boom")) == "x.yaml:1:1: boom"


def test_yaml_syntax_error() -> None:
    issue = only(HEAD + "   when: x\nsteps:\n  - wait: 1h\n")
    assert where(issue) == (5, 8)
    assert issue.message == "invalid YAML: mapping values are not allowed here"
    assert issue.file == "j.yaml"


def test_yaml_tab_and_duplicate_key() -> None:
    tab = only("id: demo\nsteps:\n\t- wait: 1h\n")
    assert where(tab) == (3, 1) and tab.hint == "indent with spaces, not tabs"
    duplicate = only("id: demo\nid: other\n")
    assert where(duplicate) == (2, 1) and "duplicate key" in duplicate.message


@pytest.mark.parametrize("text", ["", "# nothing\n", "- a\n- b\n", "just text\n"])
def test_not_a_mapping(text: str) -> None:
    issue = only(text)
    assert where(issue) == (1, 1)
    assert issue.message.startswith("a journey file must be a mapping")


def test_missing_required_key() -> None:
    issue = only("id: demo\ntrigger:\n  event: Signed Up\nsteps:\n  - wait: 1h\n")
    assert where(issue) == (1, 1)
    assert issue.message == "the journey is missing required key 'name'"


def test_missing_key_in_trigger_points_at_trigger() -> None:
    issue = only("id: demo\nname: Demo\ntrigger:\n  when: 'true'\nsteps:\n  - wait: 1h\n")
    assert where(issue) == (3, 1)
    assert issue.message == "trigger is missing required key 'event'"


def test_unknown_top_level_key() -> None:
    issue = only(HEAD + "steps:\n  - wait: 1h\nenable: true\n")
    assert where(issue) == (7, 1)
    assert issue.message == "unknown key 'enable' in the journey"
    assert issue.hint is not None
    assert issue.hint.startswith("did you mean 'enabled'? allowed: id, name, trigger, steps,")


def test_unknown_key_inside_send() -> None:
    issue = only(HEAD + "steps:\n  - send:\n      channel: sms\n      text: Hi\n      body: Yo\n")
    assert where(issue) == (9, 7)
    assert issue.message == "unknown key 'body' in send (sms)"
    assert issue.hint == "allowed: channel, text"


def test_unknown_key_in_exit_when_and_re_entry() -> None:
    issues = issues_of(
        HEAD + "exit_when:\n  event: Order Completed\n  if: 'true'\n"
        "re_entry:\n  cooldwn: 1d\nsteps:\n  - wait: 1h\n"
    )
    assert [(where(i), i.message) for i in issues] == [
        ((7, 3), "unknown key 'if' in exit_when"),
        ((8, 1), "re_entry is missing required key 'cooldown'"),
        ((9, 3), "unknown key 'cooldwn' in re_entry"),
    ]
    assert issues[2].hint == "did you mean 'cooldown'? allowed: cooldown"


def test_wrong_types() -> None:
    issues = issues_of('id: demo\nname: Demo\nenabled: "yes"\ntrigger:\n  event: X\nsteps: 3\n')
    assert [(where(i), i.message) for i in issues] == [
        ((3, 10), "enabled must be true or false, not 'yes'"),
        ((6, 8), "steps must be a non-empty list of steps, not the number 3"),
    ]


@pytest.mark.parametrize("value", ["yes", "'true'", "1"])
def test_enabled_must_be_a_real_bool(value: str) -> None:
    issue = only(f"id: demo\nname: Demo\nenabled: {value}\ntrigger:\n  event: X\nsteps: [exit]\n")
    assert where(issue) == (3, 10)
    assert issue.message.startswith("enabled must be true or false")


def test_enabled_false_is_kept() -> None:
    journey = parse_journey(
        "id: d\nname: D\nenabled: false\ntrigger: {event: X}\nsteps: [exit]\n", "j.yaml"
    )
    assert journey.enabled is False


def test_bad_durations() -> None:
    issues = issues_of(
        HEAD + "re_entry:\n  cooldown: 0d\nsteps:\n"
        "  - wait: 1 hour\n  - wait: 0s\n  - wait: 30\n  - wait: -5m\n  - wait: 2s\n"
    )
    assert [(where(i), i.message) for i in issues] == [
        ((6, 13), "re_entry.cooldown: duration '0d' must be greater than zero"),
        ((8, 11), "wait: '1 hour' is not a duration like 30s, 15m, 1h or 7d; did you mean '1h'?"),
        ((9, 11), "wait: duration '0s' must be greater than zero"),
        ((10, 11), "wait needs a unit"),
        ((11, 11), "wait: '-5m' is not a duration like 30s, 15m, 1h or 7d"),
    ]
    assert issues[3].hint == "write 30s, 30m, 30h or 30d"


def test_unknown_channel() -> None:
    issue = only(HEAD + "steps:\n  - send:\n      channel: mail\n      text: Hi\n")
    assert where(issue) == (7, 16)
    assert issue.message == "unknown channel 'mail'"
    assert issue.hint == (
        "did you mean 'email'? allowed: email, sms, whatsapp, meta_audience, meta_capi, webhook, "
        "preferred"
    )


def test_missing_channel() -> None:
    issue = only(HEAD + "steps:\n  - send:\n      text: Hi\n")
    assert where(issue) == (6, 5)
    assert issue.message == "send is missing required key 'channel'"


def test_missing_content_key_for_channel() -> None:
    issues = issues_of(
        HEAD + "steps:\n"
        "  - send:\n      channel: email\n      subject: Hello\n      text: Hi\n"
        "  - send:\n      channel: meta_audience\n"
    )
    assert [(where(i), i.message) for i in issues] == [
        ((6, 5), "send (email) is missing required key 'html'"),
        ((10, 5), "send (meta_audience) is missing required key 'audience_id'"),
    ]


def test_audience_id_must_be_a_quoted_string_of_digits() -> None:
    issues = issues_of(
        HEAD + "steps:\n  - send:\n      channel: meta_audience\n      audience_id: 2385\n"
        "  - send:\n      channel: meta_audience\n      audience_id: abc\n"
    )
    assert [(where(i), i.message) for i in issues] == [
        ((8, 20), "audience_id must be text, not the number 2385"),
        ((11, 20), "audience_id 'abc' is not valid"),
    ]
    assert issues[0].hint == 'write it in quotes: "2385"'
    assert issues[1].hint is not None and "digits only" in issues[1].hint  # the channel's words


def test_bad_cel_syntax_points_inside_the_expression() -> None:
    issue = only(
        "id: demo\nname: Demo\ntrigger:\n  event: X\n"
        "  when: event.properties.total = 20\nsteps: [exit]\n"
    )
    assert where(issue) == (5, 32)  # the '=' of `total = 20`
    assert issue.message == "trigger.when: unexpected character '=' in condition"
    assert issue.hint is not None and "==" in issue.hint


def test_bad_cel_in_quoted_and_block_scalars() -> None:
    issues = issues_of(
        "id: demo\nname: Demo\ntrigger:\n  event: X\n"
        '  when: "has(event.properties.total) && )"\n'
        "exit_when:\n  event: Y\n  when: |\n    event.properties.a == 1 &&\n"
        "      event.properties.b $ 2\nsteps: [exit]\n"
    )
    assert [(where(i), i.message) for i in issues] == [
        ((5, 41), "trigger.when: unexpected ')' in condition"),
        ((10, 26), "exit_when.when: unexpected character '$' in condition"),
    ]


def test_unknown_cel_variable() -> None:
    issue = only(
        "id: demo\nname: Demo\ntrigger:\n  event: X\n"
        "  when: event.properties.total > 1 && evnt.properties.x\nsteps: [exit]\n"
    )
    assert where(issue) == (5, 39)
    assert issue.message == "trigger.when: unknown variable 'evnt' in condition"
    assert issue.hint == "did you mean 'event'?"


def test_jinja_syntax_errors() -> None:
    issues = issues_of(
        HEAD + "steps:\n"
        '  - send:\n      channel: sms\n      text: "Hi {{ profile.traits.name }"\n'
        '  - send:\n      channel: email\n      subject: "{{ profil.email }}"\n'
        "      html: |\n        <p>Hello</p>\n        {% if event.properties.total %}\n"
        "      text: \"{{ event.x | defualt('a') }}\"\n"
    )
    assert [(where(i), i.message, i.hint) for i in issues] == [
        ((8, 14), "text: unexpected '}'", None),  # Jinja gives no column: the text's start
        ((11, 20), "subject: unknown variable 'profil' in template", "did you mean 'profile'?"),
        ((14, 9), issues[2].message, None),
        ((15, 14), "text: No filter named 'defualt'.", "did you mean 'default'?"),
    ]
    assert issues[2].message.startswith("html: Unexpected end of template")


def test_unquoted_template_gets_a_hint() -> None:
    issue = only(HEAD + "steps:\n  - send:\n      channel: sms\n      text: {{ profile.id }}\n")
    assert where(issue) == (8, 13)
    assert issue.message == "text must be text, not a mapping"
    assert issue.hint == 'text that starts with { must be quoted: "{{ ... }}"'


def test_step_with_two_keys_or_none() -> None:
    issues = issues_of(
        HEAD + "steps:\n"
        "  - wait: 1h\n    send:\n      channel: sms\n      text: Hi\n"
        "  - send:\n    channel: sms\n    text: Hi\n"
        "  - {}\n"
    )
    assert [(where(i), i.message) for i in issues] == [
        ((6, 5), "a step has exactly one kind, found wait, send"),
        ((10, 5), "a step has exactly one kind, found send, channel, text"),
        ((13, 5), f"a step must be one of {KINDS}, not an empty mapping"),
    ]
    assert issues[1].hint == "indent the options under the step kind, two spaces further than it"


def test_unknown_step_kinds() -> None:
    issues = issues_of(HEAD + "steps:\n  - wiat: 1h\n  - stop\n  - exit:\n")
    assert [(where(i), i.message, i.hint) for i in issues] == [
        ((6, 5), "unknown step kind 'wiat'", f"did you mean 'wait'? allowed: {KINDS}"),
        ((7, 5), "unknown step 'stop'", f"allowed: {KINDS}"),
        ((8, 5), "unknown step kind 'exit'", "write '- exit' alone, without ':'"),
    ]


def test_unreachable_step_after_exit() -> None:
    issue = only(HEAD + "steps:\n  - wait: 1h\n  - exit\n  - wait: 2h\n  - wait: 3h\n")
    assert where(issue) == (8, 5)
    assert issue.message == "step 2 can never run: it comes after exit (step 1)"


def test_exit_last_is_fine() -> None:
    journey = parse_journey(HEAD + "steps:\n  - wait: 2s\n  - exit\n", "j.yaml")
    assert [s.path for s in journey.steps] == ["0", "1"]


def test_bad_id_name_trigger_re_entry_and_empty_steps() -> None:
    issues = issues_of("id: Demo_1\nname: ''\ntrigger: Signed Up\nre_entry: sometimes\nsteps: []\n")
    assert [(where(i), i.message) for i in issues] == [
        ((1, 5), "id 'Demo_1' is not a valid journey id"),
        ((2, 7), "name must not be empty"),
        ((3, 10), "trigger must be a mapping of keys, not 'Signed Up'"),
        ((4, 11), "re_entry must be never, always or a cooldown, not 'sometimes'"),
        ((5, 8), "steps must be a non-empty list of steps, not an empty list"),
    ]


def test_several_errors_reported_at_once_in_file_order() -> None:
    issues = issues_of(
        "id: demo\n"
        "name: Demo\n"
        "colour: blue\n"
        "trigger:\n"
        "  event: Cart Abandoned\n"
        "  when: event.properties.total >> 20\n"
        "steps:\n"
        "  - wait: soon\n"
        "  - send:\n"
        "      channel: fax\n"
        "  - exit\n"
        "  - wait: 1h\n"
    )
    # A step that can never run is a check across the steps, made once the file is
    # otherwise valid (it is told with the next run).
    assert [where(i) for i in issues] == [(3, 1), (6, 33), (8, 11), (10, 16)]
    rendered = str(JourneyInvalid(issues))
    assert rendered.splitlines()[0] == (
        "j.yaml:3:1: unknown key 'colour' in the journey (hint: allowed: id, name, trigger, "
        "steps, description, enabled, exit_when, re_entry, goal, tests, messages, kind, "
        "priority, on_cap, caps, budget)"
    )


def test_description_and_re_entry_modes() -> None:
    journey = parse_journey(HEAD + "description: For tests\nre_entry: always\nsteps: [exit]\n", "j")
    assert (journey.re_entry.mode, journey.re_entry.cooldown) == ("always", None)


def test_duplicate_ids_in_a_directory(tmp_path: Path) -> None:
    body = "name: Demo\ntrigger:\n  event: X\nsteps:\n  - wait: 1h\n"
    (tmp_path / "a.yaml").write_text("id: demo\n" + body)
    (tmp_path / "b.yml").write_text("# copy\nid: demo\n" + body)
    (tmp_path / "c.yaml").write_text("id: other\n" + body)
    (tmp_path / "notes.txt").write_text("not a journey")
    journeys, issues = load_directory(tmp_path)
    assert [(j.id, Path(j.file).name) for j in journeys] == [
        ("demo", "a.yaml"),
        ("other", "c.yaml"),
    ]
    assert len(issues) == 1
    assert issues[0].file == str(tmp_path / "b.yml")
    assert where(issues[0]) == (2, 5)
    assert issues[0].message == f"journey id 'demo' is already used by {tmp_path / 'a.yaml'}"


def test_directory_keeps_valid_files_and_reports_broken_ones(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(HEAD + "steps: [exit]\n")
    (tmp_path / "bad.yaml").write_text(HEAD + "steps: [exit, exit]\n")
    (tmp_path / "latin1.yaml").write_bytes(b"id: x\nname: caf\xe9\n")
    journeys, issues = load_path(tmp_path)
    assert [j.id for j in journeys] == ["demo"]
    assert [(Path(i.file).name, i.line) for i in issues] == [("bad.yaml", 5), ("latin1.yaml", 2)]
    assert issues[1].message == "file is not valid UTF-8 text"


def test_missing_paths(tmp_path: Path) -> None:
    assert load_directory(tmp_path / "nope")[1][0].message == "journeys directory not found"
    journeys, issues = load_path(tmp_path / "nope.yaml")
    assert journeys == [] and issues[0].message.startswith("cannot read file")


def test_channels_come_from_the_channel_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A channel installed as its own package is usable in journeys (and their tests) at once.
    with push_channel(tmp_path, monkeypatch):
        _push_journeys()


def _push_journeys() -> None:
    journey = parse_journey(
        HEAD + "steps:\n  - send:\n      channel: push\n      title: Hi\n      text: Yo\n"
        "tests:\n  - name: push\n    events: [{at: 0s, event: Signed Up}]\n"
        "    expect: [{channel: push, contains: {title: Hi}}]\n",
        "j",
    )
    step = journey.steps[0]
    assert isinstance(step, SendStep) and sorted(step.content) == ["text", "title"]
    assert journey.tests[0].expect[0].contains == {"title": "Hi"}
    issue = only(HEAD + "steps:\n  - send:\n      channel: push\n      text: Yo\n")
    assert issue.message == "send (push) is missing required key 'title'"
