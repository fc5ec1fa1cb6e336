"""Phone numbers: the one normalisation (E.164) and the one validity rule, for every door.

The tracking API, the platform adapters' canonical records, the consent ledger, the SMS
keywords and the send-time gate all read a number through :func:`to_e164`, so a number the
platform stores is a number it can record consent for and message; anything else is refused
at the door with the reason (or, where a platform sent it and refusing would lose the cart,
left out of the record: :func:`e164_or_none`).

The rule is phonenumbers' ``is_valid_number`` (the number lies in a range its metadata says is
allocated), not ``is_possible_number`` (the length alone is plausible). A possible but invalid
number can never receive a message: e.g. ``+447700900123`` lies in Ofcom's drama range
(07700 900000-900999), reserved for fiction and never assigned, so carriers and Twilio refuse
it. Numbers must be in international form (``+`` and the country code).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import phonenumbers

EXAMPLE = "+15035550123"


class InvalidPhone(ValueError):
    """Not a number we can message; the text says why."""


def to_e164(value: Any, default_region: str | None = None) -> str:
    """``value`` in E.164, or InvalidPhone saying why it cannot be messaged."""
    text = str(value if value is not None else "").strip()
    if not text:
        raise InvalidPhone("empty phone number")
    return _to_e164(text, default_region)


# A cart's updates carry the same number again and again, and parsing one is most of the cost
# of building a canonical cart from a webhook: answers are remembered (refusals, rare, are not).
@lru_cache(maxsize=4096)
def _to_e164(text: str, default_region: str | None) -> str:
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        raise InvalidPhone(
            f"not a phone number in international format, e.g. {EXAMPLE}: {text!r}"
        ) from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidPhone(f"not a possible phone number (wrong length): {text!r}")
    if not phonenumbers.is_valid_number(number):
        region = phonenumbers.region_code_for_country_code(number.country_code)
        raise InvalidPhone(
            f"not a valid phone number: {text!r} is in no range allocated to subscribers"
            + (f" in {region}" if region and region != "ZZ" else "")
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def e164_or_none(value: Any) -> str | None:
    """``value`` in E.164 when :func:`to_e164` accepts it, else None (not stored)."""
    if value is None:
        return None
    try:
        return to_e164(value)
    except InvalidPhone:
        return None
