"""Canonical carts and orders, and the state changes they drive in app.customers/carts/orders.

Every platform adapter turns its payload into a :class:`CanonicalCart` or
:class:`CanonicalOrder`; the functions here apply them. They all take a psycopg connection
inside the caller's tenant transaction (``Database.tenant``), so the raw event and the state
it changes commit together.

Rules that make redelivery and out-of-order arrival harmless:

- a cart update older than the stored one (``source_updated_at``) never rolls content back;
- a converted or recovered cart stays so; an abandoned cart that gets a newer update is
  active again (the shopper is back), ``abandoned_at`` is kept;
- an order is stored once, converts its cart, cancels the cart's pending messages and is
  attributed to the last click within the org's attribution window.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec
import psycopg
from psycopg.types.json import Jsonb

from . import outgoing_webhooks, phones
from .events import EventRow, namespaced_key

PENDING_OUTBOX = ("scheduled", "enqueued")
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

    def __post_init__(self) -> None:
        # Written for speed (it runs for every cart event): one test per field in the
        # common case, the slow paths only for values that need them.
        if type(self.platform) is not str or not self.platform:
            raise InvalidCanonical("platform must be a name")
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


# --- customers -------------------------------------------------------------------------------

_CUSTOMER_FIELDS = (
    "phone",
    "first_name",
    "last_name",
    "external_id",
    "timezone",
    "accepts_marketing",
)


def upsert_customer(
    conn: psycopg.Connection,
    org_id: UUID,
    *,
    email: str | None = None,
    phone: str | None = None,
    first_name: str | None = None,
    last_name: str | None = None,
    external_id: str | None = None,
    timezone: str | None = None,
    accepts_marketing: bool | None = None,
) -> UUID | None:
    """Find or create the org's customer for ``email`` (lower-cased, unique per org), or, with
    no email, for ``phone``/``external_id``. Known fields are filled in, never erased.
    Returns None when there is nothing to identify a customer by."""
    fields = dict(
        phone=normalize_phone(phone),
        first_name=first_name,
        last_name=last_name,
        external_id=external_id,
        timezone=timezone,
        accepts_marketing=accepts_marketing,
    )
    email = normalize_email(email)
    if email:
        return _upsert_customers_by_email(conn, org_id, {email: fields})[email]
    if not fields["phone"] and not external_id:
        return None
    row = conn.execute(
        """
        SELECT customer_id FROM app.customers
        WHERE org_id = %s AND email IS NULL
          AND (phone = %s OR external_id = %s)
        ORDER BY created_at LIMIT 1
        """,
        (org_id, fields["phone"], external_id),
    ).fetchone()
    if row:
        conn.execute(
            f"UPDATE app.customers SET {_coalesce_assignments()}, updated_at = now() "
            "WHERE org_id = %(org_id)s AND customer_id = %(customer_id)s",
            {**fields, "org_id": org_id, "customer_id": row["customer_id"]},
        )
        return row["customer_id"]
    return conn.execute(
        "INSERT INTO app.customers (org_id, phone, first_name, last_name, external_id, "
        "timezone, accepts_marketing) VALUES (%(org_id)s, %(phone)s, %(first_name)s, "
        "%(last_name)s, %(external_id)s, %(timezone)s, %(accepts_marketing)s) "
        "RETURNING customer_id",
        {**fields, "org_id": org_id},
    ).fetchone()["customer_id"]


def _coalesce_assignments() -> str:
    return ", ".join(f"{f} = COALESCE(%({f})s, {f})" for f in _CUSTOMER_FIELDS)


def _rows(columns: Sequence[tuple[str, str]], many: bool = True) -> str:
    """The FROM item ``t`` of an upsert: one binary array parameter per column (unnest), or,
    for a single row, one binary scalar parameter per column (VALUES: cheaper to send).
    Binary (%b) because psycopg's text format escapes every array element in Python."""
    names = ", ".join(name for name, _ in columns)
    if many:
        return f"unnest({', '.join(f'%b::{kind}[]' for _, kind in columns)}) AS t({names})"
    return f"(VALUES ({', '.join(f'%b::{kind}' for _, kind in columns)})) AS t({names})"


_CUSTOMER_ROW = (
    ("email", "text"),
    ("phone", "text"),
    ("first_name", "text"),
    ("last_name", "text"),
    ("external_id", "text"),
    ("timezone", "text"),
    ("accepts_marketing", "boolean"),
)


def _customers_sql(where: str = "", many: bool = True) -> str:
    # ``where`` gates the rows (the fused statement).
    return f"""
        INSERT INTO app.customers AS cu
            (org_id, email, phone, first_name, last_name, external_id, timezone,
             accepts_marketing)
        SELECT %b, t.* FROM {_rows(_CUSTOMER_ROW, many)}
        {where}
        ON CONFLICT (org_id, email) WHERE email IS NOT NULL DO UPDATE SET
            phone = COALESCE(EXCLUDED.phone, cu.phone),
            first_name = COALESCE(EXCLUDED.first_name, cu.first_name),
            last_name = COALESCE(EXCLUDED.last_name, cu.last_name),
            external_id = COALESCE(EXCLUDED.external_id, cu.external_id),
            timezone = COALESCE(EXCLUDED.timezone, cu.timezone),
            accepts_marketing = COALESCE(EXCLUDED.accepts_marketing, cu.accepts_marketing),
            updated_at = now()
        RETURNING email, customer_id"""


_UPSERT_CUSTOMERS = _customers_sql()


def _customer_params(org_id: UUID, by_email: dict[str, dict]) -> tuple:
    emails = sorted(by_email)  # lock order, as for carts
    return (org_id, emails, *([by_email[e].get(f) for e in emails] for f in _CUSTOMER_FIELDS))


def _upsert_customers_by_email(
    conn: psycopg.Connection, org_id: UUID, by_email: dict[str, dict]
) -> dict[str, UUID]:
    """One statement for many customers keyed by (already normalised) email."""
    if not by_email:
        return {}
    rows = conn.execute(_UPSERT_CUSTOMERS, _customer_params(org_id, by_email)).fetchall()
    return {r["email"]: r["customer_id"] for r in rows}


def _customer_fields(cart: CanonicalCart) -> dict:
    return dict(
        phone=cart.phone,
        first_name=cart.first_name,
        last_name=cart.last_name,
        external_id=cart.customer_external_id,
        timezone=cart.timezone,
        accepts_marketing=cart.accepts_marketing,
    )


# --- carts -----------------------------------------------------------------------------------

# The incoming row is at least as new as the stored one (unknown times count as new: they
# cannot be ordered, and dropping them would lose the shopper's latest action).
# (A comparison with NULL is NULL, so "IS NOT FALSE" is "either is NULL, or ...". IS binds
# looser than >= and >.)
_FRESH = "EXCLUDED.source_updated_at >= c.source_updated_at IS NOT FALSE"
_NEWER = "EXCLUDED.source_updated_at > c.source_updated_at IS NOT FALSE"


def _keep_known(column: str) -> str:
    # Identity fields: a fresh update may fill or change them but never erase them (fresh:
    # the new value, else the stored one; not fresh: the stored value, else the new one).
    return (
        f"{column} = COALESCE(CASE WHEN {_FRESH} THEN EXCLUDED.{column} END, c.{column}, "
        f"EXCLUDED.{column})"
    )


def _take_fresh(column: str) -> str:
    return f"{column} = CASE WHEN {_FRESH} THEN EXCLUDED.{column} ELSE c.{column} END"


_CART_ROW = (
    ("platform", "text"),
    ("external_id", "text"),
    ("cart_token", "text"),
    ("connection_id", "uuid"),
    ("customer_id", "uuid"),
    ("email", "text"),
    ("phone", "text"),
    ("currency", "text"),
    ("total_price", "numeric"),
    ("item_count", "integer"),
    ("line_items", "text"),
    ("restore_url", "text"),
    ("source_created_at", "timestamptz"),
    ("source_updated_at", "timestamptz"),
    ("checkout_id", "text"),
)


def _cart_source(customer: str | None) -> str:
    """The SELECT list (and FROM) of the cart upsert: many rows from unnest(arrays), or, with
    ``customer`` (an expression taking the customer_id column's place), one row of scalar
    parameters (the fused statement: shorter, so psycopg caches its parsing)."""
    if customer is None:
        columns = [f"t.{name}" for name, _ in _CART_ROW]
    else:
        columns = [customer if name == "customer_id" else f"%b::{kind}" for name, kind in _CART_ROW]
    columns[[name for name, _ in _CART_ROW].index("line_items")] += "::jsonb"
    source = f"FROM {_rows(_CART_ROW)}" if customer is None else ""
    return f"SELECT %b, {', '.join(columns)}, now() {source}"


def _upsert_sql(with_content: bool, customer: str | None = None, where: str = "") -> str:
    # Carts whose content is unknown (see CanonicalCart) go through a variant that leaves the
    # stored items and total alone; a column's value in EXCLUDED cannot say "unknown".
    # ``customer`` and ``where`` let the fused statement take the customer from its own CTE
    # and gate the row on its claim.
    content = (
        f"""
    {_take_fresh("total_price")},
    {_take_fresh("item_count")},
    {_take_fresh("line_items")},"""
        if with_content
        else ""
    )
    return f"""
INSERT INTO app.carts AS c
    (org_id, platform, external_id, cart_token, connection_id, customer_id, email, phone,
     currency, total_price, item_count, line_items, restore_url, source_created_at,
     source_updated_at, checkout_id, last_activity_at)
{_cart_source(customer)}
{where}
ON CONFLICT (org_id, platform, external_id) DO UPDATE SET
    {_keep_known("cart_token")},
    {_keep_known("checkout_id")},
    {_keep_known("connection_id")},
    {_keep_known("customer_id")},
    {_keep_known("email")},
    {_keep_known("phone")},
    {_keep_known("currency")},
    {_keep_known("restore_url")},{content}
    source_created_at = LEAST(c.source_created_at, EXCLUDED.source_created_at),
    source_updated_at = GREATEST(c.source_updated_at, EXCLUDED.source_updated_at),
    last_activity_at = CASE WHEN {_FRESH} THEN now() ELSE c.last_activity_at END,
    status = CASE WHEN c.status = 'abandoned' AND {_NEWER} THEN 'active' ELSE c.status END,
    updated_at = now()
RETURNING cart_id, platform, external_id, cart_token
"""


# Whether an order waits for the upserted cart ``up`` (it arrived first, see
# _convert_carts_with_orphan_orders): the same match, so that costly statement runs only then.
_ORPHANS = """EXISTS (
    SELECT 1 FROM app.orders o
    WHERE o.org_id = %b AND o.cart_id IS NULL AND o.platform = up.platform
      AND (o.checkout_token = up.external_id OR o.cart_token = up.cart_token))"""


def _with_orphans(upsert: str) -> str:
    return (
        f"WITH up AS ({upsert})\n"
        f"SELECT up.cart_id, up.platform, up.external_id, {_ORPHANS} AS orphans FROM up"
    )


_UPSERT_WITH_CONTENT = _with_orphans(_upsert_sql(True))
_UPSERT_KEEP_CONTENT = _with_orphans(_upsert_sql(False))


def upsert_cart(conn: psycopg.Connection, org_id: UUID, cart: CanonicalCart) -> UUID:
    """Insert or update the cart keyed (org, platform, external_id); return its cart_id.

    Links (and creates) the customer by email or phone. ``last_activity_at`` moves to now()
    unless the update is older than what is stored, in which case the stored content is kept.
    Status: converted/recovered stay; abandoned becomes active on a strictly newer update.
    """
    return upsert_carts(conn, org_id, [cart])[0]


def upsert_carts(
    conn: psycopg.Connection, org_id: UUID, carts: Sequence[CanonicalCart]
) -> list[UUID]:
    """Bulk :func:`upsert_cart` in a fixed number of statements; one cart_id per input.

    Several updates of one cart in the batch are folded first, in source time order, with the
    same rules the database applies.
    """
    if not carts:
        return []
    folded: dict[tuple[str, str], CanonicalCart] = {}
    for cart in carts:
        key = (cart.platform, cart.external_id)
        folded[key] = merge_carts(folded[key], cart) if key in folded else cart
    # Key order = lock order, so concurrent batches touching the same carts cannot deadlock.
    rows = [folded[key] for key in sorted(folded)]

    by_email: dict[str, dict] = {}
    for cart in rows:
        if cart.email:
            fields = _customer_fields(cart)
            known = by_email.get(cart.email, {})
            by_email[cart.email] = {
                f: fields[f] if fields[f] is not None else known.get(f) for f in _CUSTOMER_FIELDS
            }
    customers = _upsert_customers_by_email(conn, org_id, by_email)
    customer_ids = []
    for cart in rows:
        if cart.email:
            customer_ids.append(customers[cart.email])
        elif cart.phone or cart.customer_external_id:
            # Rare (tracking without email): one lookup each.
            customer_ids.append(upsert_customer(conn, org_id, **_customer_fields(cart)))
        else:
            customer_ids.append(None)

    ids: dict[tuple[str, str], UUID] = {}
    waited_for: list[UUID] = []
    for sql, group in (
        (_UPSERT_WITH_CONTENT, [i for i, c in enumerate(rows) if c.has_content]),
        (_UPSERT_KEEP_CONTENT, [i for i, c in enumerate(rows) if not c.has_content]),
    ):
        if group:
            result = conn.execute(
                sql,
                (
                    *_cart_columns(
                        org_id, [rows[i] for i in group], [customer_ids[i] for i in group]
                    ),
                    org_id,
                ),
            )
            for r in result:
                ids[(r["platform"], r["external_id"])] = r["cart_id"]
                if r["orphans"]:
                    waited_for.append(r["cart_id"])
    if waited_for:
        _convert_carts_with_orphan_orders(conn, org_id, waited_for)
    return [ids[(c.platform, c.external_id)] for c in carts]


# --- one cart event in one statement ---------------------------------------------------------


@dataclass
class CartChange:
    """An adapter's ``apply`` that upserts one cart and, with ``converted_at``, marks it
    converted (a completed checkout). Callable like any apply; the webhook path recognises
    it and runs claim, customer, cart and raw event as one statement
    (:func:`cart_event_query`)."""

    cart: CanonicalCart
    converted_at: datetime | None = None

    def __call__(self, conn: psycopg.Connection, org_id: UUID) -> UUID:
        cart_id = upsert_cart(conn, org_id, self.cart)
        self.after(conn, org_id, cart_id, orphans=False)
        return cart_id

    def after(self, conn: psycopg.Connection, org_id: UUID, cart_id: UUID, orphans: bool) -> None:
        """What follows the upsert: link orders that waited for this cart (``orphans``, as
        the fused statement found), then the completed checkout's conversion."""
        if orphans:
            _convert_carts_with_orphan_orders(conn, org_id, [cart_id])
        if self.converted_at is not None:
            # The order event does the attribution; this only stops pending messages early.
            mark_cart_converted(conn, org_id, cart_id, self.converted_at)

    @property
    def fusable(self) -> bool:
        # A customer without email is looked up by phone/external id: several statements.
        return bool(self.cart.email) or not (self.cart.phone or self.cart.customer_external_id)


_CLAIMED = "WHERE EXISTS (SELECT 1 FROM claim)"

# The webhook write path as one statement (each CTE as the separate statements would do it:
# claim_event, _upsert_customers_by_email, upsert_carts, append_event). Nothing is written
# when the key was claimed before. Returns one row: the new event id (NULL for a duplicate),
# the cart id and whether orders wait for that cart.
_CART_EVENT = f"""
WITH claim AS (
    INSERT INTO raw.event_keys (org_id, dedup_key, event_id)
    VALUES (%b, %b, gen_random_uuid())
    ON CONFLICT DO NOTHING
    RETURNING event_id
), cust AS ({_customers_sql(_CLAIMED + " AND t.email IS NOT NULL", many=False)}
), up AS ({_upsert_sql(True, "(SELECT customer_id FROM cust)", _CLAIMED)}
), ev AS (
    INSERT INTO raw.events (org_id, event_id, source, topic, connection_id, cart_id,
                            dedup_key, occurred_at, payload, headers)
    SELECT %b::uuid, claim.event_id, %b::text, %b::text, %b::uuid, (SELECT cart_id FROM up),
           %b::text, %b::timestamptz, %b::jsonb, %b::jsonb
    FROM claim
)
SELECT (SELECT event_id FROM claim) AS event_id, up.cart_id, {_ORPHANS} AS orphans
FROM (SELECT 1) AS one LEFT JOIN up ON true
"""


# Compacted (no string literal holds these characters): psycopg caches the parsing of
# statements up to 4 kB only, and this one runs for every webhook.
_CART_EVENT = re.sub(r"\s*([,()=])\s*", r"\1", " ".join(_CART_EVENT.split()))


def cart_event_query(org_id: UUID, change: CartChange, event: EventRow) -> tuple[str, tuple]:
    """(sql, params) storing ``event`` once and, when it is new, applying ``change`` (which
    must be :attr:`CartChange.fusable`), in one statement; run it in the org's tenant
    transaction, then :meth:`CartChange.after` with its row unless ``event_id`` is NULL."""
    cart = change.cart
    customers = {cart.email: _customer_fields(cart)} if cart.email else {None: {}}
    key = namespaced_key(event.source, event.dedup_key)
    cart_row = _first(_cart_columns(org_id, [cart], [None]))
    customer_at = 1 + [name for name, _ in _CART_ROW].index("customer_id")
    return _CART_EVENT, (
        org_id,
        key,
        *_first(_customer_params(org_id, customers)),
        *cart_row[:customer_at],
        *cart_row[customer_at + 1 :],  # the customer comes from cust
        org_id,
        event.source,
        event.topic,
        event.connection_id,
        key,
        event.occurred_at,
        Jsonb(event.payload),
        Jsonb(event.headers or {}),
        org_id,
    )


def _first(params: tuple) -> tuple:
    # (org_id, column arrays...) -> (org_id, first row's values...)
    return (params[0], *(column[0] for column in params[1:]))


_LINE_ITEMS_JSON = msgspec.json.Encoder()


def _line_items_json(items: list[LineItem]) -> str:
    # One C call: every field in declaration order, decimals as strings (as pydantic's
    # serializer wrote them before).
    return _LINE_ITEMS_JSON.encode(items).decode()


def _cart_columns(org_id: UUID, rows: list[CanonicalCart], customer_ids: list) -> tuple:
    items = [c.line_items or [] for c in rows]
    return (
        org_id,
        [c.platform for c in rows],
        [c.external_id for c in rows],
        [c.cart_token for c in rows],
        [c.connection_id for c in rows],
        customer_ids,
        [c.email for c in rows],
        [c.phone for c in rows],
        [c.currency for c in rows],
        [
            c.total_price if c.total_price is not None else sum_items(c.line_items or [])
            for c in rows
        ],
        [sum(i.quantity for i in li) for li in items],
        [_line_items_json(li) for li in items],
        [c.restore_url for c in rows],
        [c.source_created_at for c in rows],
        [c.source_updated_at for c in rows],
        [c.checkout_id for c in rows],
    )


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


def find_cart(
    conn: psycopg.Connection,
    org_id: UUID,
    platform: str,
    *,
    external_ids: Sequence[str | None] = (),
    cart_token: str | None = None,
) -> dict | None:
    """The cart for the first of ``external_ids`` that exists (as external id or the
    platform's checkout id), else the most recent open cart with ``cart_token``. Locks the
    row for the rest of the transaction."""
    ids = [x for x in external_ids if x]
    if not ids and not cart_token:
        return None
    return conn.execute(
        """
        SELECT cart_id, status, external_id, email, currency, customer_id, total_price
        FROM app.carts
        WHERE org_id = %(org)s AND platform = %(platform)s
          AND (external_id = ANY(%(ids)s::text[]) OR checkout_id = ANY(%(ids)s::text[])
               OR cart_token = %(token)s)
        ORDER BY coalesce(array_position(%(ids)s::text[], external_id),
                          array_position(%(ids)s::text[], checkout_id)) NULLS LAST,
                 (status IN ('active', 'abandoned')) DESC, last_activity_at DESC
        LIMIT 1
        FOR UPDATE
        """,
        {"org": org_id, "platform": platform, "ids": ids, "token": cart_token},
    ).fetchone()


def mark_cart_converted(
    conn: psycopg.Connection, org_id: UUID, cart_id: UUID, converted_at: datetime | None = None
) -> bool:
    """The shopper bought: the cart becomes converted (unless already converted/recovered)
    and its pending messages are cancelled (reason ``cart_converted``). Idempotent. Returns
    whether the status changed."""
    row = conn.execute(
        """
        UPDATE app.carts SET status = 'converted', converted_at = COALESCE(%s, now()),
                             updated_at = now()
        WHERE org_id = %s AND cart_id = %s AND status IN ('active', 'abandoned')
        RETURNING cart_id
        """,
        (converted_at, org_id, cart_id),
    ).fetchone()
    cancel_pending_messages(conn, org_id, [cart_id])
    return row is not None


def cancel_pending_messages(
    conn: psycopg.Connection, org_id: UUID, cart_ids: Sequence[UUID], reason: str = "cart_converted"
) -> int:
    """Cancel the scheduled/enqueued outbox rows of ``cart_ids``; the delivery gate re-checks
    at send time too, this just stops them early. Returns how many were cancelled."""
    if not cart_ids:
        return 0
    cur = conn.execute(
        """
        UPDATE app.outbox SET status = 'cancelled', reason = %s, updated_at = now()
        WHERE org_id = %s AND cart_id = ANY(%s::uuid[]) AND status = ANY(%s::text[])
        """,
        (reason, org_id, list(cart_ids), list(PENDING_OUTBOX)),
    )
    return cur.rowcount


def _convert_carts_with_orphan_orders(
    conn: psycopg.Connection, org_id: UUID, cart_ids: list[UUID]
) -> None:
    # An order can arrive before its checkout (webhooks are not ordered). When the checkout
    # shows up later, link the waiting order and convert the cart, so arrival order changes
    # nothing.
    rows = conn.execute(
        """
        WITH matched AS (
            SELECT DISTINCT ON (o.order_id) o.order_id, c.cart_id, o.ordered_at
            FROM app.orders o
            JOIN app.carts c ON c.org_id = o.org_id AND c.platform = o.platform
                 AND (c.external_id = o.checkout_token OR c.cart_token = o.cart_token)
            WHERE o.org_id = %(org)s AND o.cart_id IS NULL AND c.cart_id = ANY(%(ids)s::uuid[])
            ORDER BY o.order_id, (c.external_id = o.checkout_token) DESC
        ), linked AS (
            UPDATE app.orders o SET cart_id = m.cart_id FROM matched m
            WHERE o.org_id = %(org)s AND o.order_id = m.order_id
            RETURNING m.cart_id, m.ordered_at
        )
        UPDATE app.carts c SET status = 'converted',
                               converted_at = COALESCE(c.converted_at, l.ordered_at),
                               updated_at = now()
        FROM linked l
        WHERE c.org_id = %(org)s AND c.cart_id = l.cart_id AND c.status IN ('active', 'abandoned')
        RETURNING c.cart_id
        """,
        {"org": org_id, "ids": cart_ids},
    ).fetchall()
    cancel_pending_messages(conn, org_id, [r["cart_id"] for r in rows])


# --- orders ----------------------------------------------------------------------------------


def record_order(conn: psycopg.Connection, org_id: UUID, order: CanonicalOrder) -> dict:
    """Store the order once and apply it to its cart. Idempotent.

    The cart is matched by checkout token, then checkout id (both against
    ``carts.external_id``), then cart token. The cart is marked converted and its pending
    messages cancelled. Attribution: the last click on a message for that cart at or before
    the order, within the org's ``attribution_window_seconds``, makes a recovery (revenue =
    order total) and the cart ``recovered``; this also happens when the cart was already
    converted by an earlier "checkout completed" event.

    Returns ``{"order_id", "cart_id", "recovered", "revenue"}`` (revenue None unless recovered).
    """
    cart = (
        find_cart(
            conn,
            org_id,
            order.platform,
            external_ids=[order.checkout_token, order.checkout_external_id],
            cart_token=order.cart_token,
        )
        or {}
    )
    cart_id = cart.get("cart_id")
    # What the order event leaves out (API orders often name only the cart) comes from the cart.
    email = order.email or cart.get("email")
    currency = order.currency or cart.get("currency")
    total = order.total_price if order.total_price is not None else cart.get("total_price", 0)
    customer_id = upsert_customer(conn, org_id, email=order.email, phone=order.phone) or cart.get(
        "customer_id"
    )
    row = conn.execute(
        """
        INSERT INTO app.orders AS o
            (org_id, connection_id, platform, external_id, cart_id, customer_id, email,
             checkout_token, cart_token, total_price, currency, financial_status, ordered_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, COALESCE(%s, now()))
        ON CONFLICT (org_id, platform, external_id) DO UPDATE
            SET cart_id = COALESCE(o.cart_id, EXCLUDED.cart_id),
                financial_status = COALESCE(EXCLUDED.financial_status, o.financial_status)
        RETURNING order_id, cart_id, ordered_at, total_price, currency
        """,
        (
            org_id,
            order.connection_id,
            order.platform,
            order.external_id,
            cart_id,
            customer_id,
            email,
            order.checkout_token,
            order.cart_token,
            total,
            currency,
            order.financial_status,
            order.ordered_at,
        ),
    ).fetchone()
    result = {
        "order_id": row["order_id"],
        "cart_id": row["cart_id"],
        "recovered": False,
        "revenue": None,
    }
    redeem_coupons(conn, org_id, order.discount_codes, row["order_id"], row["ordered_at"])
    if row["cart_id"] is None:
        return result
    mark_cart_converted(conn, org_id, row["cart_id"], row["ordered_at"])
    recovery = _attribute(conn, org_id, row)
    if recovery:
        result.update(recovered=True, revenue=recovery["revenue"])
    return result


def redeem_coupons(
    conn: psycopg.Connection,
    org_id: UUID,
    codes: Sequence[str],
    order_id: UUID | None,
    redeemed_at: datetime | None = None,
) -> list[str]:
    """Mark the codes we issued (app.coupons) that ``order_id`` used as redeemed; matched
    case-insensitively, codes we did not issue are ignored, the first redemption is kept.
    Returns the codes marked now."""
    wanted = sorted({str(c).strip().upper() for c in codes or () if c and str(c).strip()})
    if not wanted:
        return []
    rows = conn.execute(
        """
        UPDATE app.coupons SET redeemed_at = COALESCE(%s, now()), order_id = %s
        WHERE org_id = %s AND upper(code) = ANY(%s::text[]) AND redeemed_at IS NULL
        RETURNING code
        """,
        (redeemed_at, order_id, org_id, wanted),
    ).fetchall()
    return [r["code"] for r in rows]


def _attribute(conn: psycopg.Connection, org_id: UUID, order: dict) -> dict | None:
    recovered = conn.execute(
        """
        WITH click AS (
            SELECT me.message_id, me.occurred_at, ob.campaign_id, ob.channel
            FROM app.message_events me
            JOIN app.orgs g ON g.org_id = me.org_id
            LEFT JOIN app.outbox ob ON ob.org_id = me.org_id AND ob.message_id = me.message_id
            WHERE me.org_id = %(org)s AND me.cart_id = %(cart)s AND me.event_type = 'click'
              AND me.occurred_at <= %(at)s
              AND me.occurred_at >= %(at)s - make_interval(secs => g.attribution_window_seconds)
            ORDER BY me.occurred_at DESC
            LIMIT 1
        ), recovery AS (
            INSERT INTO app.recoveries (org_id, cart_id, order_id, message_id, campaign_id,
                                        channel, revenue, currency, clicked_at)
            SELECT %(org)s, %(cart)s, %(order)s, message_id, campaign_id, channel,
                   %(revenue)s, %(currency)s, occurred_at
            FROM click
            ON CONFLICT (org_id, cart_id) DO NOTHING
            RETURNING cart_id
        )
        UPDATE app.carts SET status = 'recovered', updated_at = now()
        WHERE org_id = %(org)s AND cart_id IN (SELECT cart_id FROM recovery)
        RETURNING app.carts.cart_id
        """,
        {
            "org": org_id,
            "cart": order["cart_id"],
            "order": order["order_id"],
            "at": order["ordered_at"],
            "revenue": order["total_price"],
            "currency": order["currency"],
        },
    ).fetchone()
    if recovered:
        # Subscribers hear of a recovery once: only when this order created it.
        outgoing_webhooks.emit(
            conn,
            org_id,
            "cart.recovered",
            {
                "cart_id": order["cart_id"],
                "order_id": order["order_id"],
                "revenue": order["total_price"],
                "currency": order["currency"],
            },
        )
    return conn.execute(
        "SELECT revenue FROM app.recoveries WHERE org_id = %s AND cart_id = %s AND order_id = %s",
        (org_id, order["cart_id"], order["order_id"]),
    ).fetchone()
