"""Web push subscriptions collected by the tracking snippet (``app.push_subscriptions``).

A subscription is ``PushSubscription.toJSON()`` from the shopper's browser: the push
service ``endpoint`` and the keys (``p256dh``, ``auth``) messages are encrypted for. It is
stored once per (org, endpoint) and linked to the snippet's cart id (``external_cart_id``,
the tracking API's ``cart_data.cart_id``), to that cart once it exists, and to the customer.

The web push provider sends to :func:`subscriptions_for_cart` and calls
:func:`delete_subscription` when the push service answers 404 or 410 (gone).

All functions take a psycopg connection inside the caller's tenant transaction.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import psycopg

from .canonical import normalize_email
from .carts import find_cart
from .customers import upsert_customer

# The tracking API's platform: the snippet's carts are stored under it.
SNIPPET_PLATFORM = "api"


def save_subscription(
    conn: psycopg.Connection,
    org_id: UUID,
    *,
    endpoint: str,
    p256dh: str,
    auth: str,
    expiration_time: datetime | None = None,
    external_cart_id: str | None = None,
    email: str | None = None,
    user_agent: str | None = None,
    key_id: UUID | None = None,
) -> tuple[UUID, bool]:
    """Store (or refresh) the subscription for ``endpoint``; returns (subscription_id,
    created). A browser that subscribes again keeps one row: its keys are replaced, and cart
    and customer links are filled in, never erased."""
    cart = (
        find_cart(conn, org_id, SNIPPET_PLATFORM, external_ids=[external_cart_id])
        if external_cart_id
        else None
    )
    email = normalize_email(email) or (cart or {}).get("email")
    customer_id = (cart or {}).get("customer_id") or (
        upsert_customer(conn, org_id, email=email) if email else None
    )
    row = conn.execute(
        """
        INSERT INTO app.push_subscriptions AS s
            (org_id, cart_id, external_cart_id, customer_id, email, endpoint, p256dh, auth,
             expiration_time, user_agent, key_id)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (org_id, endpoint) DO UPDATE SET
            p256dh = EXCLUDED.p256dh,
            auth = EXCLUDED.auth,
            expiration_time = EXCLUDED.expiration_time,
            cart_id = COALESCE(EXCLUDED.cart_id, s.cart_id),
            external_cart_id = COALESCE(EXCLUDED.external_cart_id, s.external_cart_id),
            customer_id = COALESCE(EXCLUDED.customer_id, s.customer_id),
            email = COALESCE(EXCLUDED.email, s.email),
            user_agent = COALESCE(EXCLUDED.user_agent, s.user_agent),
            key_id = COALESCE(EXCLUDED.key_id, s.key_id),
            updated_at = now()
        RETURNING subscription_id, (xmax = 0) AS created
        """,
        (
            org_id,
            (cart or {}).get("cart_id"),
            external_cart_id,
            customer_id,
            email,
            endpoint,
            p256dh,
            auth,
            expiration_time,
            user_agent,
            key_id,
        ),
    ).fetchone()
    return row["subscription_id"], row["created"]


def subscriptions_for_cart(conn: psycopg.Connection, org_id: UUID, cart_id: UUID) -> list[dict]:
    """The subscriptions a push about ``cart_id`` goes to, newest first: those linked to the
    cart, to the snippet's id of it (the subscription may predate the cart), or to its
    customer. Expired ones (``expiration_time`` past) are left out."""
    return conn.execute(
        """
        SELECT s.subscription_id, s.endpoint, s.p256dh, s.auth, s.cart_id, s.customer_id,
               s.email, s.created_at
        FROM app.push_subscriptions s
        JOIN app.carts c ON c.org_id = s.org_id AND c.cart_id = %(cart)s
        WHERE s.org_id = %(org)s
          AND (s.cart_id = c.cart_id
               OR (c.platform = %(platform)s AND s.external_cart_id = c.external_id)
               OR s.customer_id = c.customer_id)
          AND (s.expiration_time IS NULL OR s.expiration_time > now())
        ORDER BY s.updated_at DESC
        """,
        {"org": org_id, "cart": cart_id, "platform": SNIPPET_PLATFORM},
    ).fetchall()


def delete_subscription(conn: psycopg.Connection, org_id: UUID, endpoint: str) -> bool:
    """Forget the subscription for ``endpoint`` (the push service said it is gone)."""
    cur = conn.execute(
        "DELETE FROM app.push_subscriptions WHERE org_id = %s AND endpoint = %s",
        (org_id, endpoint),
    )
    return cur.rowcount > 0
