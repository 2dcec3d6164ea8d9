"""`messages:`: one message with a variant per channel and per locale, used by send steps."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator
from ruamel.yaml import YAML

from app.journeys.definition import SendStep
from app.journeys.language.files import JourneyInvalid, parse_journey
from app.journeys.schema import journey_schema
from app.journeys.templates import (
    TemplateRenderError,
    canonical_locale,
    fallbacks,
    render_variant,
)
from channels.email.content import html_to_text
from tests.helpers import HEAD, WELCOME, model_issues

ALICE = {"event": {"event": "Signed Up"}, "profile": {"traits": {"first_name": "Alice"}}}


def journey(body: str = WELCOME) -> Any:
    return parse_journey(HEAD + body, "j.yaml")


def issues(body: str) -> list[str]:
    with pytest.raises(JourneyInvalid) as info:
        parse_journey(HEAD + body, "j.yaml")
    return [str(issue) for issue in info.value.issues]


def one_issue(body: str) -> str:
    (issue,) = issues(body)
    return issue


def step(index: int, body: str = WELCOME) -> SendStep:
    found = journey(body).steps[index]
    assert isinstance(found, SendStep)
    return found


def rendered(index: int, locale: str | None, body: str = WELCOME) -> tuple[str | None, Any]:
    send = step(index, body)
    tag, variant = send.localized().pick(locale)
    return tag, render_variant(send.channel, variant, ALICE)


# --- the journey keeps the message, the step knows it -----------------------------------------


def test_a_send_step_takes_its_content_from_the_message() -> None:
    parsed = journey()
    sms, email = parsed.steps
    assert isinstance(sms, SendStep) and isinstance(email, SendStep)
    assert (sms.channel, sms.message, list(sms.content)) == ("sms", "welcome", ["text"])
    assert sorted(email.content) == ["html", "subject"]  # the text part is made at render
    assert list(parsed.messages["welcome"]) == ["email", "sms"]
    assert list(parsed.messages["welcome"]["sms"].locales) == ["en", "fr-CA"]
    assert parsed.messages["welcome"]["sms"] is sms.versions


def test_the_inline_form_still_works_and_has_only_a_default() -> None:
    send = step(0, "steps:\n  - send: {channel: sms, text: Coucou}\n")
    assert send.message is None and send.versions is None
    assert send.localized().pick("fr-CA") == (None, send.localized().default)
    assert render_variant("sms", send.localized().default, ALICE) == {"text": "Coucou"}


# --- locale: fr-CA, then fr, then the default ------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "tag", "text"),
    [
        ("fr-CA", "fr-CA", "Alice, bienvenue ! Code BIENVENUE15 : 15 % de rabais."),
        ("fr_ca", "fr-CA", "Alice, bienvenue ! Code BIENVENUE15 : 15 % de rabais."),
        ("en", "en", "Welcome! Code WELCOME15: 15% off."),
        ("en-GB", "en", "Welcome! Code WELCOME15: 15% off."),
        ("EN_us.UTF-8", "en", "Welcome! Code WELCOME15: 15% off."),
        ("fr", None, "Bienvenue ! Code BIENVENUE15 : -15 %."),
        ("de-DE", None, "Bienvenue ! Code BIENVENUE15 : -15 %."),
        (None, None, "Bienvenue ! Code BIENVENUE15 : -15 %."),
        (42, None, "Bienvenue ! Code BIENVENUE15 : -15 %."),
        ("", None, "Bienvenue ! Code BIENVENUE15 : -15 %."),
    ],
)
def test_the_profile_locale_picks_the_variant(locale: Any, tag: str | None, text: str) -> None:
    assert rendered(0, locale) == (tag, {"text": text})


def test_a_locale_without_a_channel_falls_back_to_the_default_for_it() -> None:
    tag, content = rendered(1, "fr-CA")  # fr-CA changes the SMS only
    assert tag is None and content["subject"] == "Bienvenue Alice"


@pytest.mark.parametrize(
    ("given", "canonical", "chain"),
    [
        ("fr-CA", "fr-CA", ["fr-CA", "fr"]),
        ("FR_ca", "fr-CA", ["fr-CA", "fr"]),
        ("zh-hant-tw", "zh-Hant-TW", ["zh-Hant-TW", "zh-Hant", "zh"]),
        ("es-419", "es-419", ["es-419", "es"]),
        ("pt_BR.UTF-8", "pt-BR", ["pt-BR", "pt"]),
        ("  ", "", []),
    ],
)
def test_locale_tags_are_normalised(given: str, canonical: str, chain: list[str]) -> None:
    assert canonical_locale(given) == canonical
    assert fallbacks(given) == chain


# --- e-mail: CSS inlined, text part made from the HTML ----------------------------------------


def test_email_css_is_inlined_and_media_queries_kept() -> None:
    _, content = rendered(1, None)
    html = content["html"]
    assert '<h1 style="color: #c00;">Bienvenue !</h1>' in html
    assert "h1 { color: #c00; }" not in html  # the rule moved into the element
    assert "@media (max-width: 600px)" in html  # cannot be inlined: kept in a <style>


def test_email_text_part_is_made_from_the_html_when_not_written() -> None:
    _, content = rendered(1, None)
    assert (
        content["text"] == "Bienvenue !\n\nVotre code : [BIENVENUE15](https://shop.example/promo)\n"
    )
    _, english = rendered(1, "en")
    assert english == {"subject": "Welcome", "html": "<p>Welcome!</p>", "text": "Welcome!"}


def test_html_without_style_is_left_as_written() -> None:
    send = step(0, "steps:\n  - send: {channel: email, subject: S, html: '<p>Hi</p>', text: T}\n")
    assert render_variant("email", send.localized().default, ALICE)["html"] == "<p>Hi</p>"


def test_remote_stylesheets_are_not_fetched() -> None:
    # A fetch would fail (no such host) or hang; the link is simply dropped.
    body = (
        "steps:\n  - send:\n      channel: email\n      subject: S\n      text: T\n"
        '      html: \'<link rel=stylesheet href="https://css.invalid/a.css">'
        "<style>p {color: red}</style><p>x</p>'\n"
    )
    html = render_variant("email", step(0, body).localized().default, ALICE)["html"]
    assert '<p style="color: red;">x</p>' in html and "css.invalid" not in html


def test_html_to_text_keeps_structure_and_links() -> None:
    text = html_to_text(
        "<h1>Votre panier</h1><p>Il contient :</p><ul><li>Mug</li><li>T-shirt</li></ul>"
        '<p><a href="https://shop.example/c/1">Voir le panier</a> &amp; payer</p>'
        "<style>p { color: red }</style><script>alert(1)</script>"
    )
    assert text == (
        "Votre panier\n\nIl contient :\n\n  * Mug\n  * T-shirt\n\n"
        "[Voir le panier](https://shop.example/c/1) & payer\n"
    )


# --- SMS: the segment budget -------------------------------------------------------------------


def test_a_rendered_sms_over_max_segments_is_a_render_error() -> None:
    long_name = {"event": {}, "profile": {"traits": {"first_name": "Marie-Ève " * 12}}}
    send = step(0)
    _, variant = send.localized().pick("fr-CA")
    with pytest.raises(TemplateRenderError) as info:
        render_variant("sms", variant, long_name)
    assert str(info.value) == (
        "the SMS is UCS-2, 168 UCS-2 units, 3 segments (UCS-2 because of È); max_segments is 1"
    )
    assert render_variant("sms", variant, ALICE)  # fits for Alice


def test_a_literal_sms_over_max_segments_is_refused_at_load() -> None:
    text = "x" * 161
    issue = one_issue(
        f"messages:\n  promo:\n    sms:\n      text: {text}\n      max_segments: 1\n"
        "steps:\n  - send: {channel: sms, message: promo}\n"
    )
    assert issue == (
        "j.yaml:8:13: messages.promo.sms.text: the SMS is GSM-7, 161 characters, 2 segments; "
        "max_segments is 1 (hint: shorten the text (a character outside GSM-7 makes the whole "
        "SMS UCS-2), or raise max_segments)"
    )


def test_a_literal_sms_that_turns_ucs2_is_counted_as_such() -> None:
    body = (
        "messages:\n  promo:\n    sms:\n      text: {text}\n      max_segments: 1\n"
        "steps:\n  - send: {{channel: sms, message: promo}}\n"
    )
    journey(body.format(text="é" * 160))  # GSM-7: fits one segment
    assert "UCS-2, 71 UCS-2 units, 2 segments" in one_issue(body.format(text="ê" * 71))


@pytest.mark.parametrize("value", ["0", "11", "'1'", "1.5", "true"])
def test_max_segments_must_be_a_small_whole_number(value: str) -> None:
    issue = one_issue(
        f"messages:\n  promo:\n    sms:\n      text: Hi\n      max_segments: {value}\n"
        "steps:\n  - send: {channel: sms, message: promo}\n"
    )
    assert ":9:21: max_segments must be a whole number from 1 to 10" in issue


# --- validation: every mistake at its line and column -----------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "messages:\n  welcome: {sms: {text: Hi}}\n"
            "steps:\n  - send: {channel: sms, message: welcom}\n",
            "j.yaml:8:35: unknown message 'welcom' (hint: did you mean 'welcome'?)",
        ),
        (
            "steps:\n  - send: {channel: sms, message: welcome}\n",
            "j.yaml:6:35: unknown message 'welcome' (hint: define it under messages: at the "
            "top level, e.g. messages: {welcome: {sms: {text: Bienvenue !}}})",
        ),
        (
            "messages:\n  welcome: {sms: {text: Hi}}\n"
            "steps:\n  - send: {channel: email, message: welcome}\n",
            "j.yaml:8:37: message 'welcome' has no email variant (hint: it has sms; add email: "
            "under messages.welcome)",
        ),
        (
            "messages:\n  welcome: {sms: {text: Hi}}\nsteps:\n  - send: {message: welcome}\n",
            "j.yaml:8:5: send is missing required key 'channel' (hint: one of: email, sms, "
            "whatsapp, meta_audience, meta_capi, webhook, preferred)",
        ),
        (
            "messages:\n  welcome: {sms: {text: Hi}}\n"
            "steps:\n  - send: {channels: [sms], message: welcome}\n",
            "j.yaml:8:5: send is missing required key 'channel' (hint: a send step sends on one "
            "channel: write one send step per channel; one of: email, sms, whatsapp, "
            "meta_audience, meta_capi, webhook, preferred)",
        ),
        (
            "messages:\n  welcome: {sms: {text: Hi}}\n"
            "steps:\n  - send: {channel: sms, message: welcome, text: Yo}\n",
            "j.yaml:8:44: unknown key 'text' in send (sms) (hint: the content comes from the "
            "message: change text under messages:)",
        ),
        (
            "messages:\n  welcome:\n    email: {subjet: Hi, html: <p>Hi</p>}\n"
            "steps:\n  - send: {channel: email, message: welcome}\n",
            "j.yaml:7:13: unknown key 'subjet' in messages.welcome.email (hint: did you mean "
            "'subject'? allowed: html, subject, text)",
        ),
        (
            "messages:\n  welcome:\n    sms: {text: '{{ profil.traits.x }}'}\n"
            "steps:\n  - send: {channel: sms, message: welcome}\n",
            "j.yaml:7:21: messages.welcome.sms.text: unknown variable 'profil' in template "
            "(hint: did you mean 'profile'?)",
        ),
        (
            "messages:\n  welcome:\n    sms: {text: Hi}\n"
            "    locales:\n      fr_CA: {sms: {text: Allo}}\n"
            "steps:\n  - send: {channel: sms, message: welcome}\n",
            "j.yaml:9:7: 'fr_CA' is not a locale tag (hint: write fr-CA)",
        ),
        (
            "messages:\n  welcome:\n    sms: {text: Hi}\n"
            "    locales:\n      french: {sms: {text: Allo}}\n"
            "steps:\n  - send: {channel: sms, message: welcome}\n",
            "j.yaml:9:7: 'french' is not a locale tag (hint: a language, then an optional "
            "region: fr, en, fr-CA, pt-BR, es-419)",
        ),
        (
            "messages:\n  welcome:\n    sms: {text: Hi}\n"
            "    locales:\n      fr: {email: {subject: S, html: H}}\n"
            "steps:\n  - send: {channel: sms, message: welcome}\n",
            "j.yaml:9:12: unknown key 'email' in locale fr (hint: add email: to the message "
            "itself too; it is sent when no locale matches)",
        ),
        (
            "messages:\n  welcome:\n    sms: {text: Hi}\n"
            "    locales:\n      fr: {sms: {text: '{{ x }}'}}\n"
            "steps:\n  - send: {channel: sms, message: welcome}\n",
            "j.yaml:9:28: messages.welcome.locales.fr.sms.text: unknown variable 'x' in "
            "template (hint: templates can use event, profile, unsubscribe_url)",
        ),
        (
            "messages:\n  welcome:\n    sms: {text: Hi}\n"
            "    locales:\n      fr: {sms: {txt: Allo}}\n"
            "steps:\n  - send: {channel: sms, message: welcome}\n",
            "j.yaml:9:12: messages.welcome.locales.fr.sms is missing required key 'text'",
        ),
        (
            "messages:\n  Welcome Mail: {sms: {text: Hi}}\nsteps: [exit]\n",
            "j.yaml:6:3: message name 'Welcome Mail' is not valid (hint: use lowercase "
            "letters, digits, - and _, e.g. welcome or cart_reminder)",
        ),
        (
            "messages:\n  welcome: {locales: {fr: {}}}\nsteps: [exit]\n",
            "j.yaml:6:27: messages.welcome.locales.fr: a locale needs at least one channel: one "
            "or more of email, sms, whatsapp, meta_audience, meta_capi, webhook",
        ),
        (
            "messages:\n  welcome: {fax: {text: Hi}, sms: {text: Hi}}\nsteps: [exit]\n",
            "j.yaml:6:13: unknown key 'fax' in messages.welcome (hint: allowed: email, sms, "
            "whatsapp, meta_audience, meta_capi, webhook, locales)",
        ),
        (
            "messages:\n  ads: {meta_audience: {audience_id: abc}}\nsteps: [exit]\n",
            "j.yaml:6:38: messages.ads.meta_audience.audience_id 'abc' is not valid (hint: The "
            "Meta Custom Audience to add the person to: its id in quotes, digits only (e.g. "
            '"23850000000000001"), or a template that renders one.)',
        ),
    ],
)
def test_message_mistakes(body: str, expected: str) -> None:
    assert expected in issues(body)


def test_a_broken_message_is_reported_once_not_at_every_step() -> None:
    found = issues(
        "messages:\n  welcome:\n    sms:\n      text: '{{ x'\n"
        "steps:\n  - send: {channel: sms, message: welcome}\n"
        "  - send: {channel: sms, message: welcome}\n"
    )
    assert len(found) == 1 and "messages.welcome.sms.text" in found[0]


@pytest.mark.parametrize(
    "template",
    ["{{ ''.__class__ }}", "{{ cycler.__init__.__globals__ }}", "{{ profile.traits.clear() }}"],
)
def test_escape_attempts_in_any_locale_are_refused_at_load(template: str) -> None:
    found = issues(
        "messages:\n  welcome:\n    sms: {text: Hi}\n    locales:\n"
        f'      fr: {{sms: {{text: "{template}"}}}}\n'
        "steps:\n  - send: {channel: sms, message: welcome}\n"
    )
    assert len(found) == 1 and found[0].startswith("j.yaml:9:")
    assert "messages.welcome.locales.fr.sms.text:" in found[0]


def test_meta_audience_message_keeps_remove_on_exit() -> None:
    send = step(
        0,
        'messages:\n  ads: {meta_audience: {audience_id: "23850000000000001"}}\n'
        "steps:\n  - send: {channel: meta_audience, message: ads, remove_on_exit: true}\n",
    )
    assert send.remove_on_exit and send.message == "ads"


# --- the JSON Schema agrees --------------------------------------------------------------------


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    return Draft202012Validator(journey_schema())


def schema_errors(validator: Draft202012Validator, body: str) -> list[str]:
    data = YAML(typ="safe", pure=True).load(HEAD + body)
    return [error.message for error in validator.iter_errors(data)]


def test_the_schema_accepts_a_message_journey(validator: Draft202012Validator) -> None:
    assert schema_errors(validator, WELCOME) == []
    assert model_issues(HEAD + WELCOME) == []


BROKEN = {
    "message name with capitals": "messages:\n  Welcome: {sms: {text: Hi}}\nsteps: [exit]\n",
    "empty messages": "messages: {}\nsteps: [exit]\n",
    "message without channel": (
        "messages:\n  w: {locales: {fr: {sms: {text: Hi}}}}\nsteps: [exit]\n"
    ),
    "unknown channel in message": "messages:\n  w: {fax: {text: Hi}}\nsteps: [exit]\n",
    "email variant without html": "messages:\n  w: {email: {subject: S}}\nsteps: [exit]\n",
    "max_segments on email": (
        "messages:\n  w: {email: {subject: S, html: H, max_segments: 1}}\nsteps: [exit]\n"
    ),
    "max_segments zero": "messages:\n  w: {sms: {text: Hi, max_segments: 0}}\nsteps: [exit]\n",
    "bad locale tag": (
        "messages:\n  w: {sms: {text: Hi}, locales: {fr_CA: {sms: {text: Allo}}}}\nsteps: [exit]\n"
    ),
    "empty locale": "messages:\n  w: {sms: {text: Hi}, locales: {fr: {}}}\nsteps: [exit]\n",
    "send with message and content": (
        "messages:\n  w: {sms: {text: Hi}}\n"
        "steps:\n  - send: {channel: sms, message: w, text: Yo}\n"
    ),
    "send with message but no channel": (
        "messages:\n  w: {sms: {text: Hi}}\nsteps:\n  - send: {message: w}\n"
    ),
    "inline max_segments": "steps:\n  - send: {channel: sms, text: Hi, max_segments: 1}\n",
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_the_schema_and_validation_both_reject(validator: Draft202012Validator, name: str) -> None:
    assert schema_errors(validator, BROKEN[name]), f"the schema accepts: {name}"
    assert model_issues(HEAD + BROKEN[name]), f"the models accept: {name}"
    assert issues(BROKEN[name]), f"validation accepts: {name}"


LOADER_ONLY = {
    "unknown message": "steps:\n  - send: {channel: sms, message: nope}\n",
    "message without the step's channel": (
        "messages:\n  w: {sms: {text: Hi}}\nsteps:\n  - send: {channel: email, message: w}\n"
    ),
    "locale channel missing from the message": (
        "messages:\n  w: {sms: {text: Hi}, locales: {fr: {email: {subject: S, html: H}}}}\n"
        "steps: [exit]\n"
    ),
    "literal text over max_segments": (
        f"messages:\n  w: {{sms: {{text: {'x' * 200}, max_segments: 1}}}}\nsteps: [exit]\n"
    ),
    "escape attempt": "messages:\n  w: {sms: {text: \"{{ ''.__class__ }}\"}}\nsteps: [exit]\n",
}


@pytest.mark.parametrize("name", list(LOADER_ONLY))
def test_what_only_validation_checks(validator: Draft202012Validator, name: str) -> None:
    assert schema_errors(validator, LOADER_ONLY[name]) == []
    assert issues(LOADER_ONLY[name])
