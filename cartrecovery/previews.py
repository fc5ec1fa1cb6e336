"""Rendering one campaign step for a cart, exactly as a send would, without sending anything.

Used by ``POST /api/v1/campaigns/{id}/preview`` and the dashboard's step builder. Nothing is
sent, stored or created: the restore link points at a placeholder (a click on it cannot count
as recovery traffic) and a step's discount shows the code ``PREVIEW-CODE``. Without a cart,
a sample cart (:data:`SAMPLE_ITEMS`, :data:`SAMPLE_CUSTOMER`) is used.
"""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

import psycopg

from .discounts import preview_coupon
from .rendering import Rendered, build_context, render

SAMPLE_ITEMS = [
    {
        "title": "Merino Wool Beanie",
        "variant_title": "Charcoal",
        "quantity": 2,
        "price": "24.00",
        "image_url": "https://placehold.co/160x160/png?text=Beanie",
    },
    {
        "title": "Trail Running Socks",
        "variant_title": "M",
        "quantity": 1,
        "price": "18.50",
        "image_url": "https://placehold.co/160x160/png?text=Socks",
    },
]
SAMPLE_CUSTOMER = {"first_name": "Alex", "last_name": "Sample", "email": "alex@example.com"}


class CartNotFound(LookupError):
    """The cart is not one of the org's."""


def sample_cart(org_id, currency: str | None = None) -> dict:
    """A made-up cart of two items in ``currency`` (default USD)."""
    total = sum(Decimal(i["price"]) * i["quantity"] for i in SAMPLE_ITEMS)
    return {
        "org_id": org_id,
        "cart_id": None,
        "platform": "preview",
        "currency": currency or "USD",
        "total_price": total,
        "item_count": sum(i["quantity"] for i in SAMPLE_ITEMS),
        "line_items": SAMPLE_ITEMS,
        "email": SAMPLE_CUSTOMER["email"],
        "restore_url": None,
    }


def org_row(conn: psycopg.Connection, org_id) -> dict:
    """The org's name and settings, as the renderer reads them."""
    row = conn.execute(
        "SELECT name, settings FROM app.orgs WHERE org_id = %s", (org_id,)
    ).fetchone()
    return row or {}


def cart_and_customer(conn: psycopg.Connection, org_id, cart_id: UUID) -> tuple[dict, dict | None]:
    """One of the org's carts and its customer; CartNotFound if the org has no such cart."""
    cart = conn.execute(
        "SELECT * FROM app.carts WHERE org_id = %s AND cart_id = %s", (org_id, cart_id)
    ).fetchone()
    if cart is None:
        raise CartNotFound(str(cart_id))
    customer = (
        conn.execute(
            "SELECT first_name, last_name, email FROM app.customers "
            "WHERE org_id = %s AND customer_id = %s",
            (org_id, cart["customer_id"]),
        ).fetchone()
        if cart.get("customer_id")
        else None
    )
    return cart, customer


def recent_carts(conn: psycopg.Connection, org_id, limit: int = 20) -> list[dict]:
    """The org's most recently active carts that have items: what a preview can render for."""
    rows = conn.execute(
        """
        SELECT cart_id, email, total_price, currency, item_count, status, last_activity_at
        FROM app.carts WHERE org_id = %s AND item_count > 0
        ORDER BY last_activity_at DESC LIMIT %s
        """,
        (org_id, limit),
    ).fetchall()
    return [dict(r) for r in rows]


def render_step(
    conn: psycopg.Connection,
    org_id,
    step: dict,
    app_url: str,
    cart_id: UUID | None = None,
    sample_currency: str | None = None,
) -> Rendered:
    """Render ``step`` (a stored step dict, or a variant merged into one) for the org's cart
    ``cart_id`` or a sample cart. RenderError if the template does not render;
    CartNotFound for a cart of another org."""
    org = org_row(conn, org_id)
    if cart_id is not None:
        cart, customer = cart_and_customer(conn, org_id, cart_id)
    else:
        cart, customer = sample_cart(org_id, sample_currency), SAMPLE_CUSTOMER
    channel = step.get("channel") or "email"
    base = app_url.rstrip("/")
    context = build_context(
        cart,
        org,
        customer,
        cart.get("email") or (customer or {}).get("email"),
        message={
            "org_id": org_id,
            "message_id": None,
            "cart_id": cart.get("cart_id"),
            "channel": channel,
        },
        coupon=preview_coupon(step),
        restore_url=f"{base}/r/preview",
        unsubscribe_url=f"{base}/unsubscribe/preview",
    )
    return render(step.get("template"), step.get("subject"), context, channel)
