"""How many SMS segments a body costs: GSM-7 when every character fits, else UCS-2.

A single GSM-7 message holds 160 septets; a concatenated one 153 per segment (the user data
header takes the rest), and an extension character (``^{}\\[~]|€`` and form feed) costs two
septets that must stay in one segment. UCS-2 holds 70 UTF-16 code units, 67 per segment when
concatenated, and a surrogate pair (an emoji) must stay in one segment. Carriers bill per
segment, so this is recorded per message.
"""

from __future__ import annotations

from dataclasses import dataclass

# GSM 03.38 basic character set (without the escape character itself) and its extension table.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")

GSM7_SINGLE, GSM7_MULTI = 160, 153
UCS2_SINGLE, UCS2_MULTI = 70, 67


@dataclass(frozen=True)
class SegmentCount:
    encoding: str  # 'GSM-7' or 'UCS-2'
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int


def is_gsm7(text: str) -> bool:
    return all(c in GSM7_BASIC or c in GSM7_EXTENDED for c in text)


def _pack(costs: list[int], single: int, multi: int) -> int:
    """Segments needed for characters costing ``costs`` units each, never splitting one."""
    total = sum(costs)
    if total <= single:
        return 1
    segments, used = 1, 0
    for cost in costs:
        if used + cost > multi:
            segments, used = segments + 1, 0
        used += cost
    return segments


def count_segments(text: str) -> SegmentCount:
    """The encoding, length in units and segment count of ``text`` as an SMS body.

    An empty body is one segment (it is still one message).
    """
    if is_gsm7(text):
        costs = [2 if c in GSM7_EXTENDED else 1 for c in text]
        return SegmentCount("GSM-7", sum(costs), _pack(costs, GSM7_SINGLE, GSM7_MULTI))
    costs = [2 if ord(c) > 0xFFFF else 1 for c in text]
    return SegmentCount("UCS-2", sum(costs), _pack(costs, UCS2_SINGLE, UCS2_MULTI))
