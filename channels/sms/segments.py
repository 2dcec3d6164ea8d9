"""How an SMS text is encoded and how many billed segments it takes (3GPP TS 23.038).

A text made only of characters of the GSM 7-bit default alphabet (and its extension table) is
sent as GSM-7: 160 septets in one message, 153 per segment once it has to be split (the
other 7 carry the concatenation header). One character outside it, an emoji or a French `ô`,
and the whole text goes as UCS-2: 70 UTF-16 code units alone, 67 per segment. Providers bill
per segment, so a marketer must see the count before a campaign goes out, and `max_segments`
can refuse a text that grew past its budget.

National language shift tables (Turkish, Portuguese…) are not used: providers send the
default alphabet unless told otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

# The default alphabet, in code order 0x00-0x7F; 0x1B (the escape to the extension table) is
# not a character of its own and is left out. 0x09 is the capital Ç: a lowercase ç is not in
# the alphabet and makes the text UCS-2.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table: each of these is sent as escape + code, so it costs two septets.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67
MAX_SEGMENTS = 10  # the most a `max_segments` guard may allow; longer texts are not SMS


@dataclass(frozen=True)
class SmsSize:
    """`units`: septets (GSM-7) or UTF-16 code units (UCS-2); `unencodable`: the characters,
    in order of appearance, that forced UCS-2 (empty for GSM-7)."""

    encoding: Encoding
    units: int
    segments: int
    unencodable: tuple[str, ...] = ()

    def describe(self) -> str:
        """`GSM-7, 42 characters, 1 segment`, for previews and error messages."""
        unit = "character" if self.encoding == "GSM-7" else "UCS-2 unit"
        plural = "s" if self.units != 1 else ""
        segments = f"{self.segments} segment{'s' if self.segments != 1 else ''}"
        text = f"{self.encoding}, {self.units} {unit}{plural}, {segments}"
        if self.unencodable:
            text += f" (UCS-2 because of {' '.join(self.unencodable)})"
        return text


def measure(text: str) -> SmsSize:
    """The encoding, length and segment count of `text` as a provider would send it.

    An empty text is still one message."""
    unencodable = tuple(
        dict.fromkeys(ch for ch in text if ch not in GSM7_BASIC and ch not in GSM7_EXTENSION)
    )
    if not unencodable:
        costs = [2 if ch in GSM7_EXTENSION else 1 for ch in text]
        return SmsSize("GSM-7", sum(costs), _segments(costs, GSM7_SINGLE, GSM7_PART))
    costs = [2 if ord(ch) > 0xFFFF else 1 for ch in text]  # astral: a surrogate pair
    return SmsSize("UCS-2", sum(costs), _segments(costs, UCS2_SINGLE, UCS2_PART), unencodable)


def _segments(costs: list[int], single: int, part: int) -> int:
    """Segments needed when a character is never split between two of them: an escaped
    GSM-7 character or a UTF-16 surrogate pair moves whole to the next segment."""
    if sum(costs) <= single:
        return 1
    segments, used = 1, 0
    for cost in costs:
        if used + cost > part:
            segments, used = segments + 1, 0
        used += cost
    return segments
