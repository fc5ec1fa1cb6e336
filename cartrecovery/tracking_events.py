"""Tracking-API events: the body of one cart event (``{"event", "cart_data", "timestamp",
"event_id"}``, docs/tracking-api.md) as validated models, and its canonical cart and order.

The tracking API (``ingest/tracking.py``) and the built-in ``generic`` platform
(``integrations/generic``) read the same body, so the models live here, below both.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from . import client_clock, phones
from .canonical import MAX_MONEY, CanonicalCart, CanonicalOrder, LineItem, sum_items
from .devices import MAX_USER_AGENT, device_class

SOURCE = "api"
MAX_BATCH = 1000
EVENTS = ("cart_created", "cart_updated", "checkout_started", "checkout_updated", "order_completed")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _money():
    return Field(default=None, ge=0, lt=MAX_MONEY)


def _text():
    return Field(default=None, max_length=1000)


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True, str_strip_whitespace=True)


class TrackCustomer(_Body):
    id: str | None = Field(default=None, max_length=255)
    first_name: str | None = _text()
    last_name: str | None = _text()
    timezone: str | None = Field(default=None, max_length=64)
    accepts_marketing: bool | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("unknown IANA time zone") from exc
        return value


class TrackLineItem(_Body):
    product_id: str | None = Field(default=None, max_length=255)
    variant_id: str | None = Field(default=None, max_length=255)
    sku: str | None = Field(default=None, max_length=255)
    title: str | None = _text()
    quantity: int = Field(default=1, ge=0, le=1_000_000)
    price: Decimal = Field(default=Decimal("0"), ge=0, lt=MAX_MONEY)
    image_url: str | None = Field(default=None, max_length=2048)


class TrackOrder(_Body):
    order_id: str = Field(min_length=1, max_length=255)
    total_price: Decimal | None = _money()
    currency: str | None = Field(default=None, pattern=r"^[A-Za-z]{3}$")


class CartData(_Body):
    cart_id: str = Field(min_length=1, max_length=255)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=32)
    customer: TrackCustomer | None = None
    currency: str | None = Field(default=None, pattern=r"^[A-Za-z]{3}$")
    total_price: Decimal | None = _money()
    line_items: list[TrackLineItem] | None = Field(default=None, max_length=500)
    restore_url: str | None = Field(default=None, max_length=2048, pattern=r"^https?://")
    order: TrackOrder | None = None
    # The shopper's device class, or their browser's User-Agent for us to classify (a store
    # server relaying the event); neither: the request's own User-Agent (the JS snippet).
    device: Literal["desktop", "mobile", "tablet"] | None = None
    user_agent: str | None = Field(default=None, max_length=MAX_USER_AGENT)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value and not _EMAIL.match(value):
            raise ValueError("not an email address")
        return value or None

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        # The one rule of every door (a stored number can be consented and messaged).
        return phones.to_e164(value) if value else None

    @model_validator(mode="after")
    def _total_fits(self):
        if self.total_price is None and self.line_items:
            if sum_items(self.line_items) >= MAX_MONEY:
                raise ValueError("line items add up to more than the largest total accepted")
        return self


class TrackEvent(_Body):
    event: Literal[EVENTS]  # type: ignore[valid-type]
    cart_data: CartData
    timestamp: datetime
    event_id: str | None = Field(default=None, min_length=1, max_length=255)
    # The timestamp as sent, when it was too far ahead of the server clock (then clamped).
    _given_timestamp: datetime | None = PrivateAttr(default=None)

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        # A timestamp without an offset is read as UTC rather than the server's zone.
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    def model_post_init(self, context: Any) -> None:
        # A clock in the future would lock the cart (see cartrecovery.client_clock).
        used, clamped = client_clock.clamp_future(self.timestamp)
        if clamped:
            self._given_timestamp, self.timestamp = self.timestamp, used

    @property
    def timestamp_clamped(self) -> bool:
        return self._given_timestamp is not None

    def clamp_note(self) -> dict:
        """What the answer says about a clamped timestamp ({} when it was used as given)."""
        if self._given_timestamp is None:
            return {}
        return {
            "timestamp_clamped": True,
            "warning": (
                f"timestamp {self._given_timestamp.isoformat()} is more than "
                f"{int(client_clock.MAX_SKEW.total_seconds() // 60)} minutes ahead of the "
                f"server clock; {self.timestamp.isoformat()} (time of receipt) was used"
            ),
        }

    @model_validator(mode="after")
    def _order_needed(self):
        if self.event == "order_completed" and self.cart_data.order is None:
            raise ValueError("cart_data.order is required for order_completed")
        return self


def to_cart(
    event: TrackEvent,
    platform: str = SOURCE,
    connection_id: UUID | None = None,
    request_device: str | None = None,
) -> CanonicalCart:
    """The validated event as a canonical cart (its values are validated already; the
    canonical cart lowers the email and uppers the currency).

    The device is the event's ``device``, else its ``user_agent`` classified, else
    ``request_device`` (the class of the request's own User-Agent, when a browser sent it)."""
    data, customer = event.cart_data, event.cart_data.customer
    device = data.device or device_class(data.user_agent) or request_device
    lines = (
        None
        if data.line_items is None
        else [
            LineItem(
                product_id=i.product_id,
                variant_id=i.variant_id,
                sku=i.sku,
                title=i.title,
                quantity=i.quantity,
                price=i.price,
                image_url=i.image_url,
            )
            for i in data.line_items
        ]
    )
    who = (
        {}
        if customer is None
        else {
            "first_name": customer.first_name,
            "last_name": customer.last_name,
            "timezone": customer.timezone,
            "accepts_marketing": customer.accepts_marketing,
            "customer_external_id": customer.id,
        }
    )
    return CanonicalCart(
        platform=platform,
        connection_id=connection_id,
        external_id=data.cart_id,
        email=data.email,
        phone=data.phone,
        currency=data.currency,
        total_price=data.total_price,
        line_items=lines,
        restore_url=data.restore_url,
        source_created_at=event.timestamp,
        source_updated_at=event.timestamp,
        device=device,
        **who,
    )


def to_order(
    event: TrackEvent, platform: str = SOURCE, connection_id: UUID | None = None
) -> CanonicalOrder:
    data, order = event.cart_data, event.cart_data.order
    total = order.total_price
    if total is None and data.line_items is not None:
        total = data.total_price if data.total_price is not None else sum_items(data.line_items)
    # Still None: record_order takes the stored cart's total.
    return CanonicalOrder(
        platform=platform,
        connection_id=connection_id,
        external_id=order.order_id,
        checkout_external_id=data.cart_id,
        email=data.email,
        phone=data.phone,
        total_price=total,
        currency=order.currency or data.currency,
        ordered_at=event.timestamp,
    )
