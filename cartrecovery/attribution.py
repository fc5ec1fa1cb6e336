"""Attribution: which message, if any, won a converted cart back.

One rule for every platform:

- **Conversion time** (:func:`conversion_time`) is when the order was placed or paid as the
  platform reports it, never earlier than the cart events we saw before the order (the
  cart's ``source_updated_at`` / ``source_created_at``, as the platform reported them).
  Platforms differ in what an order's first timestamp means (WooCommerce's ``date_created``
  is when a pending order was first saved, possibly long before it was placed); an order
  cannot have been placed before the cart it closes last changed, so the later time stands.
- **Recovery** (:func:`attribute`): the last click on a message for that cart at or before the
  conversion time, within the org's ``attribution_window_seconds``, makes a recovery
  (``app.recoveries``, revenue = the order total in the order's currency) and the cart
  ``recovered``. A cart is recovered once; subscribers hear ``cart.recovered`` once.

Both take a psycopg connection inside the caller's tenant transaction.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

import psycopg

from . import outgoing_webhooks


def conversion_time(
    conn: psycopg.Connection, org_id: UUID, cart_id: UUID, reported: datetime | None
) -> datetime:
    """When ``cart_id`` converted, given the time the platform ``reported`` for the order
    (placed or paid; None: now): never earlier than the latest cart event we saw."""
    # GREATEST ignores NULLs: an unknown cart time never wins.
    row = conn.execute(
        "SELECT GREATEST(COALESCE(%s::timestamptz, now()), source_updated_at, source_created_at)"
        " AS at FROM app.carts WHERE org_id = %s AND cart_id = %s",
        (reported, org_id, cart_id),
    ).fetchone()
    if row is None:
        return conn.execute(
            "SELECT COALESCE(%s::timestamptz, now()) AS at", (reported,)
        ).fetchone()["at"]
    return row["at"]


def attribute(
    conn: psycopg.Connection,
    org_id: UUID,
    *,
    cart_id: UUID,
    order_id: UUID,
    converted_at: datetime,
    revenue: Decimal,
    currency: str | None,
) -> dict | None:
    """Record the recovery of ``cart_id`` by ``order_id`` when a click on one of its messages
    lies within the attribution window before ``converted_at`` (see the module docstring).
    Idempotent. Returns ``{"revenue"}`` of this order's recovery, or None."""
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
            "cart": cart_id,
            "order": order_id,
            "at": converted_at,
            "revenue": revenue,
            "currency": currency,
        },
    ).fetchone()
    if recovered:
        # Subscribers hear of a recovery once: only when this order created it.
        outgoing_webhooks.emit(
            conn,
            org_id,
            "cart.recovered",
            {
                "cart_id": cart_id,
                "order_id": order_id,
                "revenue": revenue,
                "currency": currency,
            },
        )
    return conn.execute(
        "SELECT revenue FROM app.recoveries WHERE org_id = %s AND cart_id = %s AND order_id = %s",
        (org_id, cart_id, order_id),
    ).fetchone()
