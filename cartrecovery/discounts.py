"""What a campaign step's discount offers, read from its stored ``discount``; pure, no I/O.

Delivery issues real codes from an offer (``delivery.coupons``); previews show a placeholder
(:func:`preview_coupon`) so nothing is created in a store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

TYPES = ("percentage", "fixed_amount", "free_shipping")
_ALIASES = {
    "percent": "percentage",
    "fixed": "fixed_amount",
    "fixed_cart": "fixed_amount",
    "amount": "fixed_amount",
    "shipping": "free_shipping",
}
DEFAULT_LIFETIME = timedelta(hours=72)
PREVIEW_CODE = "PREVIEW-CODE"


@dataclass(frozen=True)
class DiscountOffer:
    type: str
    value: Decimal
    lifetime: timedelta


def offer_of(step: dict | None) -> DiscountOffer | None:
    """The discount a step offers (its ``discount``), or None. Tolerates stored shapes from
    before validation tightened: ``expires_in_hours``/``expires_in_days``/
    ``expires_in_seconds`` and type aliases (percent, fixed, fixed_cart)."""
    raw = (step or {}).get("discount")
    if not isinstance(raw, dict):
        return None
    kind = str(raw.get("type") or "percentage").lower()
    kind = _ALIASES.get(kind, kind)
    if kind not in TYPES:
        return None
    try:
        value = Decimal(str(raw.get("value", 0)))
    except InvalidOperation:
        return None
    if not value.is_finite() or value < 0 or (kind != "free_shipping" and value == 0):
        return None
    lifetime = DEFAULT_LIFETIME
    for key, unit in (
        ("expires_in_seconds", 1),
        ("expires_in_hours", 3600),
        ("expires_in_days", 86400),
    ):
        if raw.get(key) is not None:
            lifetime = timedelta(seconds=float(raw[key]) * unit)
    return DiscountOffer(kind, value.quantize(Decimal("0.01")), lifetime)


def preview_coupon(step: dict | None, now: datetime | None = None) -> dict | None:
    """A placeholder coupon for previews: the step's offer with code ``PREVIEW-CODE``;
    nothing is created anywhere. None when the step offers no discount."""
    offer = offer_of(step)
    if offer is None:
        return None
    return {
        "code": PREVIEW_CODE,
        "type": offer.type,
        "value": offer.value,
        "expires_at": (now or datetime.now(UTC)) + offer.lifetime,
        "platform": "preview",
    }
