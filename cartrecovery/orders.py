"""Orders: stored once, converting their cart, redeeming the coupons we issued, and
attributed to the message that won the cart back (``cartrecovery.attribution``).

Every function takes a psycopg connection inside the caller's tenant transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import psycopg

from . import attribution
from .canonical import CanonicalOrder
from .carts import find_cart, mark_cart_converted
from .customers import upsert_customer


def record_order(conn: psycopg.Connection, org_id: UUID, order: CanonicalOrder) -> dict:
    """Store the order once and apply it to its cart. Idempotent.

    The cart is matched by checkout token, then checkout id (both against
    ``carts.external_id``), then cart token. The cart is marked converted and its pending
    messages cancelled. Attribution (``cartrecovery.attribution``): the conversion time is the
    order's reported time, never earlier than the cart's last event; the last click on a
    message for that cart at or before it, within the org's attribution window, makes a
    recovery (revenue = order total) and the cart ``recovered``; this also happens when the
    cart was already converted by an earlier "checkout completed" event.

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
    converted_at = attribution.conversion_time(conn, org_id, row["cart_id"], row["ordered_at"])
    mark_cart_converted(conn, org_id, row["cart_id"], converted_at)
    recovery = attribution.attribute(
        conn,
        org_id,
        cart_id=row["cart_id"],
        order_id=row["order_id"],
        converted_at=converted_at,
        revenue=row["total_price"],
        currency=row["currency"],
    )
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
