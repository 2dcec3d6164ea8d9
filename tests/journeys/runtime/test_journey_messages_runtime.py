"""A message send through the real engine: the person's locale picks the variant, the e-mail
is finished (CSS inlined, text part), an SMS over its budget is recorded as failed, unsent."""

from __future__ import annotations

from pathlib import Path

from app.delivery import models
from tests.helpers import HEAD, WELCOME, Pipeline, deliveries, journeys, person_at, send, track_at


def test_the_profile_locale_picks_the_variant_sent(tmp_path: Path, pipeline: Pipeline) -> None:
    journeys(tmp_path, HEAD.replace("id: demo", "id: welcome") + WELCOME)
    send(pipeline, person_at(locale="fr_CA"), track_at("Signed Up"))
    sms, email = sorted(deliveries(), key=lambda d: d.step_path)
    assert (sms.step_path, sms.channel) == ("0", "sms")
    assert sms.content == {"text": "Alice, bienvenue ! Code BIENVENUE15 : 15 % de rabais."}
    # fr-CA has no e-mail: the default is sent, finished like every e-mail.
    assert email.content["subject"] == "Bienvenue Alice"
    assert '<h1 style="color: #c00;">Bienvenue !</h1>' in email.content["html"]
    assert email.content["text"].startswith("Bienvenue !\n\nVotre code : [BIENVENUE15]")


def test_an_sms_over_max_segments_fails_with_the_reason_and_is_not_sent(
    tmp_path: Path, pipeline: Pipeline
) -> None:
    journeys(tmp_path, HEAD + WELCOME)
    send(pipeline, person_at(locale="fr-CA", first_name="Marie-Ève " * 12), track_at("Signed Up"))
    sms = next(d for d in deliveries() if d.channel == "sms")
    assert (sms.status, sms.attempts, sms.content) == (models.FAILED, 0, {})
    assert sms.error == (
        "locale fr-CA: the SMS is UCS-2, 168 UCS-2 units, 3 segments (UCS-2 because of È); "
        "max_segments is 1"
    )
