"""SMS encoding and segments, by the GSM 03.38 (3GPP TS 23.038) tables providers bill by."""

from __future__ import annotations

import pytest

from channels.sms.segments import GSM7_BASIC, GSM7_EXTENSION, SmsSize, measure


def test_the_tables_have_the_size_of_the_standard() -> None:
    # 128 codes minus the escape (0x1B); the extension table's printable characters.
    assert len(GSM7_BASIC) == 127
    assert sorted(GSM7_EXTENSION) == sorted("\f^{}\\[~]|€")
    assert not GSM7_BASIC & GSM7_EXTENSION


@pytest.mark.parametrize(
    "text",
    [
        "é è ù ì ò à É Ç",  # the accents the default alphabet has
        "Ä Ö Ñ Ü ä ö ñ ü ß Æ æ Ø ø Å å",
        "Δ Φ Γ Λ Ω Π Ψ Σ Θ Ξ",
        "@ £ $ ¥ ¤ § ¡ ¿ _",
        "line one\nline two\r\n",
        "Bienvenue ! Code BIENVENUE15 : -15 %.",
    ],
)
def test_gsm7_texts(text: str) -> None:
    assert measure(text).encoding == "GSM-7"


@pytest.mark.parametrize(
    ("text", "culprits"),
    [
        ("Merci beaucoup, à bientôt", ("ô",)),  # ô, ê, â, î, û, ë, ï are not in GSM-7
        ("Français", ("ç",)),  # only the capital Ç is (0x09)
        ("Noël et fête", ("ë", "ê")),
        ("Bravo 🎉", ("🎉",)),
        ("Zażółć", ("ż", "ó", "ł", "ć")),
        ("`quoted`", ("`",)),
        ("tab\there", ("\t",)),
    ],
)
def test_one_character_outside_gsm7_makes_the_whole_text_ucs2(
    text: str, culprits: tuple[str, ...]
) -> None:
    size = measure(text)
    assert size.encoding == "UCS-2"
    assert size.unencodable == culprits


@pytest.mark.parametrize(
    ("length", "segments"),
    [(1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3), (460, 4)],
)
def test_gsm7_segments(length: int, segments: int) -> None:
    assert measure("a" * length) == SmsSize("GSM-7", length, segments)


def test_extension_characters_count_twice() -> None:
    assert measure("€" * 80) == SmsSize("GSM-7", 160, 1)
    assert measure("€" * 80 + "a") == SmsSize("GSM-7", 161, 2)
    assert measure("{[|]}~^\\\f").units == 18


def test_an_escaped_character_is_not_split_between_segments() -> None:
    # 152 septets, then € (2): 154 > 153, so € opens segment 2 (a naive count says 154/153).
    text = "a" * 152 + "€" + "a" * 152
    assert measure(text).units == 306
    assert measure(text).segments == 3  # [152], [€ + 151], [1]


@pytest.mark.parametrize(
    ("length", "segments"),
    [(1, 1), (70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4)],
)
def test_ucs2_segments(length: int, segments: int) -> None:
    text = "ô" * length
    assert measure(text) == SmsSize("UCS-2", length, segments, ("ô",))


def test_an_emoji_is_two_ucs2_units_and_never_split() -> None:
    assert measure("😀" * 35) == SmsSize("UCS-2", 70, 1, ("😀",))
    assert measure("😀" * 35 + "a").segments == 2
    # 66 units, then a 2-unit emoji: 68 > 67, so it moves whole to segment 2.
    text = "ô" * 66 + "😀" + "ô" * 66
    assert measure(text).units == 134
    assert measure(text).segments == 3


def test_an_empty_text_is_one_message() -> None:
    assert measure("") == SmsSize("GSM-7", 0, 1)


def test_describe_says_encoding_length_segments_and_why() -> None:
    assert measure("Bonjour").describe() == "GSM-7, 7 characters, 1 segment"
    assert measure("a" * 200).describe() == "GSM-7, 200 characters, 2 segments"
    assert measure("à bientôt 🎉").describe() == (
        "UCS-2, 12 UCS-2 units, 1 segment (UCS-2 because of ô 🎉)"
    )
