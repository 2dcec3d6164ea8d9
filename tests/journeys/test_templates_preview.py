"""`carillon templates preview`: every variant of a send step, rendered; bad input refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from tests.helpers import HEAD, WELCOME

runner = CliRunner()


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "welcome.yaml").write_text(HEAD + WELCOME)
    (tmp_path / "profile.json").write_text(
        json.dumps({"traits": {"first_name": "Zoé", "locale": "fr_CA"}, "phone": "+1514"})
    )
    (tmp_path / "event.json").write_text(json.dumps({"event": "Signed Up", "properties": {}}))
    return tmp_path


def preview(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["templates", "preview", *args])
    return result.exit_code, result.stdout, result.stderr


def test_every_channel_and_locale_is_rendered_with_sms_sizes(files: Path) -> None:
    code, out, _ = preview(
        str(files / "welcome.yaml"),
        "0",
        "--profile",
        str(files / "profile.json"),
        "--event",
        str(files / "event.json"),
    )
    assert code == 0, out
    headers = [line for line in out.splitlines() if line.startswith("== ")]
    assert headers == [
        "== sms · default",
        "== sms · en",
        "== sms · fr-CA  (what this person gets)",
        "== email · default",
        "== email · en",
    ]
    assert out.splitlines()[0] == "journey demo, step 0: send on sms, message welcome"
    assert "GSM-7, 37 characters, 1 segment\ntext: Bienvenue ! Code BIENVENUE15 : -15 %." in out
    assert "text: Zoé, bienvenue ! Code BIENVENUE15 : 15 % de rabais." in out
    assert "subject: Bienvenue Zoé" in out
    assert '<h1 style="color: #c00;">Bienvenue !</h1>' in out  # rendered as sent: CSS inlined


def test_a_journey_id_from_the_journeys_directory(
    files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.settings import get_settings

    monkeypatch.setenv("CARILLON_JOURNEYS_DIR", str(files))
    get_settings.cache_clear()
    try:
        code, out, _ = preview("demo", "1", "--profile", str(files / "profile.json"))
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert code == 0, out
    assert "== email · default  (what this person gets)" in out
    assert "text:\nBienvenue !\n\nVotre code : [BIENVENUE15](https://shop.example/promo)" in out


def test_an_inline_send_of_a_shipped_journey(files: Path) -> None:
    shipped = Path(__file__).resolve().parents[2] / "journeys" / "newsletter_welcome.yaml"
    code, out, _ = preview(str(shipped), "0")
    assert code == 0, out
    assert [line for line in out.splitlines() if line.startswith("== ")] == [
        "== sms · default  (what this person gets)"
    ]
    assert "GSM-7" in out or "UCS-2" in out


def test_a_preferred_send_shows_every_variant_none_chosen_yet(files: Path) -> None:
    """The channel is chosen per person when the step runs, from their segment: the preview
    cannot know it, so it marks none."""
    shipped = Path(__file__).resolve().parents[2] / "journeys" / "abandoner_rescue.yaml"
    code, out, _ = preview(str(shipped), "1")
    assert code == 0, out
    assert out.splitlines()[0] == (
        "journey abandoner-rescue, step 1: send on preferred, message rescue"
    )
    assert [line for line in out.splitlines() if line.startswith("== ")] == [
        "== email · default",
        "== sms · default",
    ]


def test_a_variant_that_cannot_be_rendered_is_shown_and_exits_1(files: Path) -> None:
    # Without a first name the fr-CA SMS (no default filter) cannot be rendered.
    (files / "nameless.json").write_text(json.dumps({"traits": {"locale": "fr-CA"}}))
    code, out, _ = preview(
        str(files / "welcome.yaml"), "0", "--profile", str(files / "nameless.json")
    )
    assert code == 1
    assert (
        "== sms · fr-CA  (what this person gets)\nFAILED: profile.traits.first_name is undefined"
        in out
    )
    assert "== sms · en\nGSM-7" in out  # the others are still shown


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["{dir}/welcome.yaml", "7"],
            "error: journey demo has no step '7'; its send steps are: 0, 1",
        ),
        (["{dir}/missing.yaml", "0"], "is neither a file nor a journey id"),
        (["{dir}/welcome.yaml", "0", "--profile", "{dir}/nope.json"], "cannot read the profile"),
        (["{dir}/welcome.yaml", "0", "--event", "{dir}/bad.json"], "the event is not valid JSON"),
        (["{dir}/welcome.yaml", "0", "--profile", "{dir}/list.json"], "must be a JSON object"),
    ],
)
def test_bad_input_is_refused_with_exit_2(files: Path, args: list[str], message: str) -> None:
    (files / "bad.json").write_text("{nope")
    (files / "list.json").write_text("[1]")
    code, out, err = preview(*(a.format(dir=files) for a in args))
    assert code == 2 and out == ""
    assert message in err


def test_a_step_that_is_not_a_send(files: Path) -> None:
    (files / "wait.yaml").write_text(
        HEAD + "steps:\n  - wait: 1h\n  - send: {channel: sms, text: Hi}\n"
    )
    code, _, err = preview(str(files / "wait.yaml"), "0")
    assert code == 2
    assert err.strip() == "error: step 0 is a wait step, not a send; send steps: 1"


def test_an_invalid_journey_prints_its_issues_and_exits_1(files: Path) -> None:
    (files / "broken.yaml").write_text(HEAD + "steps:\n  - send: {channel: sms, message: nope}\n")
    code, _, err = preview(str(files / "broken.yaml"), "0")
    assert code == 1
    assert "broken.yaml:6:35: unknown message 'nope'" in err
