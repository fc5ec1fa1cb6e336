"""Canonical carts and orders: what every platform adapter hands over.

An adapter turns its payload into a :class:`CanonicalCart` or :class:`CanonicalOrder`;
``cartrecovery.carts`` and ``cartrecovery.orders`` apply them to the database. The records
normalise what they are given (emails lower-cased, phones E.164 where recognisable,
currencies upper-cased, numeric ids as text) and refuse what the tables cannot hold
(:class:`InvalidCanonical`, answered 400 ``validation_error`` by the webhook).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec

from . import phones
from .devices import DEVICE_CLASSES

MAX_MONEY = Decimal("1e12")  # app.carts/orders hold numeric(14, 2)
MAX_ITEMS = 2**31  # app.carts.item_count (the sum of the quantities) is an integer


def normalize_email(value: Any) -> str | None:
    """Emails are matched case-insensitively: stored trimmed and lower-cased."""
    if value is None:
        return None
    text = str(value).strip().lower()
    return text or None


def normalize_phone(value: Any) -> str | None:
    """E.164 for a number we can message (``phones.to_e164``), else None: not stored (the raw
    event keeps what the platform sent)."""
    return phones.e164_or_none(value)


def normalize_currency(value: Any) -> str | None:
    if value is None:
        return None
    return str(value).strip().upper() or None


class InvalidCanonical(ValueError):
    """A canonical cart or order that cannot be stored: a value of the wrong type, out of
    the database's bounds, or an empty id. The webhook answers 400 ``validation_error``."""


# The canonical records are msgspec Structs: building one costs a fraction of a pydantic
# model (the records are made for every webhook; see docs/BENCHMARKS.md "Adapters").
# ``__post_init__`` runs on direct construction and after ``validate``: it normalises and
# checks the bounds the tables need, so an adapter may pass ids as numbers, money as
# str/float/int and unnormalised emails, and a wrong value raises InvalidCanonical.


def _text(value: Any, name: str) -> str | None:
    """An optional text field: numbers become text (platforms send ids as numbers)."""
    kind = type(value)
    if kind is str or value is None:
        return value
    if kind is int or kind is float:
        return str(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise InvalidCanonical(f"{name} must be text")


def _money(value: Any, name: str) -> Decimal:
    if type(value) is not Decimal:
        if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
            raise InvalidCanonical(f"{name} must be a decimal number")
        try:
            value = Decimal(str(value).strip())
        except ArithmeticError as exc:
            raise InvalidCanonical(f"{name} must be a decimal number") from exc
    if not value.is_finite() or value < 0 or value >= MAX_MONEY:
        raise InvalidCanonical(f"{name} must be at least 0 and below 10^12")
    return value


def _time(value: Any, name: str) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    raise InvalidCanonical(f"{name} must be a datetime")


def _uuid(value: Any) -> UUID:
    """A connection id given as a UUID or its text."""
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            pass
    raise InvalidCanonical("connection_id must be a UUID")


_TEXT = (str, type(None))
_UUID = (UUID, type(None))
_BOOL = (bool, type(None))
_TIME = (datetime, type(None))


class _Canonical(msgspec.Struct, kw_only=True):
    @classmethod
    def validate(cls, data: Mapping[str, Any]):
        """Build from a mapping with its types checked (msgspec, in C), then normalised and
        bounds-checked as on direct construction; raises InvalidCanonical."""
        try:
            return msgspec.convert(data, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise InvalidCanonical(str(exc)) from exc

    def to_dict(self) -> dict[str, Any]:
        return msgspec.structs.asdict(self)


class LineItem(_Canonical, kw_only=True):
    title: str | None = None
    product_id: str | None = None
    variant_id: str | None = None
    sku: str | None = None
    quantity: int = 1
    price: Decimal = Decimal("0")
    image_url: str | None = None

    def __post_init__(self) -> None:
        # Fast path first (one test per field): lines are built many per cart.
        if type(self.quantity) is not int or not 0 <= self.quantity < MAX_ITEMS:
            raise InvalidCanonical("quantity must be a whole number from 0 to 2^31 - 1")
        price = self.price
        if type(price) is not Decimal or not price.is_finite() or not 0 <= price < MAX_MONEY:
            self.price = _money(price, "price")
        if not (
            type(self.product_id) in _TEXT
            and type(self.variant_id) in _TEXT
            and type(self.sku) in _TEXT
            and type(self.title) in _TEXT
        ):
            self._ids_as_text()
        if type(self.image_url) not in _TEXT:
            raise InvalidCanonical("image_url must be text")

    def _ids_as_text(self) -> None:
        # Numbers become text (BigCommerce and Shopify send product ids as numbers).
        self.product_id = _text(self.product_id, "product_id")
        self.variant_id = _text(self.variant_id, "variant_id")
        self.sku = _text(self.sku, "sku")
        self.title = _text(self.title, "title")


def _external_id(value: Any) -> str:
    text = _text(value, "external_id")
    text = text.strip() if text else text
    if not text:
        raise InvalidCanonical("external_id must not be empty")
    return text


class CanonicalCart(_Canonical, kw_only=True):
    """A cart or checkout as every platform adapter hands it over."""

    platform: str
    external_id: str  # checkout token, or the store's cart id
    cart_token: str | None = None
    checkout_id: str | None = None  # the platform's numeric checkout id, where it has one
    connection_id: UUID | None = None
    email: str | None = None  # stored trimmed and lower-cased
    phone: str | None = None  # E.164, None when not a number we can message
    first_name: str | None = None
    last_name: str | None = None
    timezone: str | None = None
    accepts_marketing: bool | None = None
    customer_external_id: str | None = None
    currency: str | None = None  # upper-cased
    # None (both) means "content unknown": an order event that names the cart but not its
    # items must not empty it.
    total_price: Decimal | None = None
    line_items: list[LineItem] | None = None
    restore_url: str | None = None
    source_created_at: datetime | None = None
    source_updated_at: datetime | None = None
    # The shopper's device class (cartrecovery.devices); None: unknown.
    device: str | None = None

    def __post_init__(self) -> None:
        # Written for speed (it runs for every cart event): one test per field in the
        # common case, the slow paths only for values that need them.
        if type(self.platform) is not str or not self.platform:
            raise InvalidCanonical("platform must be a name")
        if self.device is not None and self.device not in DEVICE_CLASSES:
            raise InvalidCanonical(f"device must be one of {', '.join(DEVICE_CLASSES)}")
        ext = self.external_id
        if type(ext) is not str or not ext or ext[0].isspace() or ext[-1].isspace():
            self.external_id = _external_id(ext)
        if not (
            type(self.cart_token) in _TEXT
            and type(self.checkout_id) in _TEXT
            and type(self.customer_external_id) in _TEXT
        ):
            self.cart_token = _text(self.cart_token, "cart_token")
            self.checkout_id = _text(self.checkout_id, "checkout_id")
            self.customer_external_id = _text(self.customer_external_id, "customer_external_id")
        if type(self.connection_id) not in _UUID:
            self.connection_id = _uuid(self.connection_id)
        email = self.email
        if email is not None:
            self.email = (
                (email.strip().lower() or None) if type(email) is str else normalize_email(email)
            )
        if self.phone is not None:
            self.phone = normalize_phone(self.phone)
        currency = self.currency
        if currency is not None:
            self.currency = (
                (currency.strip().upper() or None)
                if type(currency) is str
                else normalize_currency(currency)
            )
        total = self.total_price
        if total is not None and (
            type(total) is not Decimal or not total.is_finite() or not 0 <= total < MAX_MONEY
        ):
            self.total_price = _money(total, "total_price")
        items = self.line_items
        if items is not None:
            if type(items) is not list:
                raise InvalidCanonical("line_items must be a list of LineItem")
            count = 0
            for item in items:
                if type(item) is not LineItem:
                    raise InvalidCanonical("line_items must be a list of LineItem")
                count += item.quantity
            if count >= MAX_ITEMS:
                raise InvalidCanonical("more items than a cart can count")
        if not (
            type(self.first_name) in _TEXT
            and type(self.last_name) in _TEXT
            and type(self.timezone) in _TEXT
            and type(self.restore_url) in _TEXT
        ):
            raise InvalidCanonical("first_name, last_name, timezone and restore_url are text")
        if type(self.accepts_marketing) not in _BOOL:
            raise InvalidCanonical("accepts_marketing must be true or false")
        if type(self.source_created_at) not in _TIME:
            self.source_created_at = _time(self.source_created_at, "source_created_at")
        if type(self.source_updated_at) not in _TIME:
            self.source_updated_at = _time(self.source_updated_at, "source_updated_at")

    @property
    def has_content(self) -> bool:
        # Items decide: a total without items cannot be checked against what is stored.
        return self.line_items is not None


class CanonicalOrder(_Canonical, kw_only=True):
    """An order as every platform adapter hands it over."""

    platform: str
    external_id: str
    connection_id: UUID | None = None
    checkout_token: str | None = None
    checkout_external_id: str | None = None  # matched against carts.external_id too
    cart_token: str | None = None
    email: str | None = None
    phone: str | None = None
    # None: the matched cart's total
    total_price: Decimal | None = None
    currency: str | None = None
    financial_status: str | None = None
    ordered_at: datetime | None = None
    discount_codes: list[str] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        if type(self.platform) is not str or not self.platform:
            raise InvalidCanonical("platform must be a name")
        ext = self.external_id
        if type(ext) is not str or not ext or ext[0].isspace() or ext[-1].isspace():
            self.external_id = _external_id(ext)
        if type(self.checkout_token) not in _TEXT:
            self.checkout_token = _text(self.checkout_token, "checkout_token")
        if type(self.checkout_external_id) not in _TEXT:
            self.checkout_external_id = _text(self.checkout_external_id, "checkout_external_id")
        if type(self.cart_token) not in _TEXT:
            self.cart_token = _text(self.cart_token, "cart_token")
        if type(self.connection_id) not in _UUID:
            self.connection_id = _uuid(self.connection_id)
        if self.email is not None:
            self.email = normalize_email(self.email)
        if self.phone is not None:
            self.phone = normalize_phone(self.phone)
        if self.currency is not None:
            self.currency = normalize_currency(self.currency)
        if self.total_price is not None:
            self.total_price = _money(self.total_price, "total_price")
        if type(self.financial_status) not in _TEXT:
            self.financial_status = _text(self.financial_status, "financial_status")
        if type(self.ordered_at) not in _TIME:
            self.ordered_at = _time(self.ordered_at, "ordered_at")
        codes = self.discount_codes
        if type(codes) is not list or len(codes) > 100 or not all(type(c) is str for c in codes):
            raise InvalidCanonical("discount_codes must be a list of at most 100 codes")


def sum_items(items: Sequence[LineItem]) -> Decimal:
    """The cart total when the sender gives none: price times quantity, summed."""
    return sum((i.price * i.quantity for i in items), Decimal("0"))


def merge_carts(old: CanonicalCart, new: CanonicalCart) -> CanonicalCart:
    """The cart after ``old`` then ``new``, by the same rules as the database upsert."""
    fresh = (
        new.source_updated_at is None
        or old.source_updated_at is None
        or new.source_updated_at >= old.source_updated_at
    )
    winner, loser = (new, old) if fresh else (old, new)
    data = {}
    for name in (
        "cart_token",
        "checkout_id",
        "connection_id",
        "email",
        "phone",
        "currency",
        "restore_url",
        "first_name",
        "last_name",
        "timezone",
        "accepts_marketing",
        "customer_external_id",
        "device",
    ):
        if getattr(winner, name) is None:
            data[name] = getattr(loser, name)
    if not winner.has_content:
        data["line_items"], data["total_price"] = loser.line_items, loser.total_price
    created = [t for t in (old.source_created_at, new.source_created_at) if t is not None]
    updated = [t for t in (old.source_updated_at, new.source_updated_at) if t is not None]
    data["source_created_at"] = min(created) if created else None
    data["source_updated_at"] = max(updated) if updated else None
    # Every value comes from a validated cart: a copy, not a second validation (batches fold
    # many updates of one cart).
    return msgspec.structs.replace(winner, **data)
