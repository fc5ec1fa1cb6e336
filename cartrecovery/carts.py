"""Cart state: the upsert of canonical carts into app.carts (one statement per batch, or
fused with the raw event for a webhook), conversion and the cancelling of pending messages.

Every function takes a psycopg connection inside the caller's tenant transaction
(``Database.tenant``), so the raw event and the state it changes commit together.

Rules that make redelivery and out-of-order arrival harmless:

- a cart update older than the stored one (``source_updated_at``) never rolls content back;
- a converted or recovered cart stays so; an abandoned cart that gets a newer update is
  active again (the shopper is back), ``abandoned_at`` is kept;
- an order that arrived before its cart is linked, and converts the cart, when the cart
  arrives (orders themselves are ``cartrecovery.orders``).
- a cart stored under the platform's checkout id (a Shopify checkout the historical sync
  imported before its webhook) is the cart of the first change naming that checkout id with
  its token: it is re-keyed to the token, not duplicated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import msgspec
import psycopg

from .canonical import CanonicalCart, LineItem, merge_carts, sum_items
from .customers import (
    CUSTOMER_FIELDS,
    customer_fields,
    upsert_customer,
    upsert_customers_by_email,
)
from .sql_rows import rows_from

PENDING_OUTBOX = ("scheduled", "enqueued")


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
    ("device", "text"),
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
    source = f"FROM {rows_from(_CART_ROW)}" if customer is None else ""
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
     source_updated_at, checkout_id, device, last_activity_at)
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
    {_keep_known("restore_url")},
    {_keep_known("device")},{content}
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
            fields = customer_fields(cart)
            known = by_email.get(cart.email, {})
            by_email[cart.email] = {
                f: fields[f] if fields[f] is not None else known.get(f) for f in CUSTOMER_FIELDS
            }
    customers = upsert_customers_by_email(conn, org_id, by_email)
    customer_ids = []
    for cart in rows:
        if cart.email:
            customer_ids.append(customers[cart.email])
        elif cart.phone or cart.customer_external_id:
            # Rare (tracking without email): one lookup each.
            customer_ids.append(upsert_customer(conn, org_id, **customer_fields(cart)))
        else:
            customer_ids.append(None)

    _adopt_carts_stored_by_checkout_id(conn, org_id, rows)

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


# A cart stored under its platform's checkout id (external_id = checkout_id: Shopify's
# historical sync imports a checkout that way when GraphQL gives no token, see
# integrations/shopify/sync.py) takes the external id of the first change that names the
# same checkout with its token, so the upsert that follows updates it instead of adding a
# second cart: one cart with both identities. Only carts with a checkout id other than
# their external id take part, so other changes pay nothing; each row is two index probes.
_ADOPT = """
UPDATE app.carts c SET external_id = u.external_id, updated_at = now()
FROM unnest(%b::text[], %b::text[], %b::text[], %b::uuid[])
     AS u(platform, external_id, checkout_id, connection_id)
WHERE c.org_id = %b AND c.platform = u.platform AND c.external_id = u.checkout_id
  AND c.checkout_id = u.checkout_id
  AND c.connection_id IS NOT DISTINCT FROM u.connection_id
  AND NOT EXISTS (SELECT 1 FROM app.carts k WHERE k.org_id = %b AND k.platform = u.platform
                  AND k.external_id = u.external_id)
"""


def _adopt_carts_stored_by_checkout_id(
    conn: psycopg.Connection, org_id: UUID, rows: Sequence[CanonicalCart]
) -> None:
    named = [c for c in rows if c.checkout_id and c.checkout_id != c.external_id]
    if not named:
        return
    conn.execute(
        _ADOPT,
        (
            [c.platform for c in named],
            [c.external_id for c in named],
            [c.checkout_id for c in named],
            [c.connection_id for c in named],
            org_id,
            org_id,
        ),
    )


# --- a cart change the applier can defer -----------------------------------------------------


@dataclass
class CartChange:
    """An adapter's ``apply`` that upserts one cart and, with ``converted_at``, marks it
    converted (a completed checkout). Callable like any apply; the webhook path recognises
    it and defers it to the applier (``cartrecovery.applier``), which upserts many in one
    statement."""

    cart: CanonicalCart
    converted_at: datetime | None = None

    def __call__(self, conn: psycopg.Connection, org_id: UUID) -> UUID:
        cart_id = upsert_cart(conn, org_id, self.cart)
        if self.converted_at is not None:
            # The order event does the attribution; this only stops pending messages early.
            mark_cart_converted(conn, org_id, cart_id, self.converted_at)
        return cart_id


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
        [c.device for c in rows],
    )


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
    """The shopper bought: the cart becomes converted (unless already converted/recovered) at
    ``converted_at`` (None: now; an order's is ``attribution.conversion_time``), and its
    pending messages are cancelled (reason ``cart_converted``). Idempotent. Returns whether
    the status changed."""
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
