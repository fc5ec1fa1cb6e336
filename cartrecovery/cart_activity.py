"""When a shopper was last active, as the store platform reports it (not when we heard):
the idle clock of carts that reach us late, through an API fetch or a historical import.

Used by the BigCommerce adapter (its callbacks arrive after the fact) and by historical sync
(``integrations.sync``), which settles old imported carts as abandoned without enrolling them.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import psycopg


def backdate_activity(conn: psycopg.Connection, org_id: UUID, cart_id: UUID, at: datetime) -> None:
    """The shopper's last action was at ``at`` (not when we heard of it): an active cart's
    idle clock starts there."""
    conn.execute(
        "UPDATE app.carts SET last_activity_at = LEAST(last_activity_at, %s) "
        "WHERE org_id = %s AND cart_id = %s AND status = 'active'",
        (at, org_id, cart_id),
    )


def settle_imported_cart(conn: psycopg.Connection, org_id: UUID, cart_id: UUID) -> str | None:
    """After a historical import of the cart: its idle clock starts at the platform's last
    update, and if that is older than the org's abandonment timeout, the cart is abandoned
    now, without enrollment (no message is ever sent for it). Returns the cart's status."""
    row = conn.execute(
        """
        UPDATE app.carts c
        SET last_activity_at = LEAST(c.last_activity_at,
                                     COALESCE(c.source_updated_at, c.last_activity_at)),
            status = CASE WHEN c.status = 'active' AND COALESCE(c.source_updated_at,
                                 c.source_created_at, '-infinity') < t.threshold
                          THEN 'abandoned' ELSE c.status END,
            abandoned_at = CASE WHEN c.status = 'active' AND COALESCE(c.source_updated_at,
                                 c.source_created_at, '-infinity') < t.threshold
                                THEN COALESCE(COALESCE(c.source_updated_at, c.source_created_at)
                                              + t.timeout, now())
                                ELSE c.abandoned_at END,
            updated_at = now()
        FROM (SELECT make_interval(secs => abandonment_timeout_seconds) AS timeout,
                     now() - make_interval(secs => abandonment_timeout_seconds) AS threshold
              FROM app.orgs WHERE org_id = %(org)s) t
        WHERE c.org_id = %(org)s AND c.cart_id = %(cart)s
        RETURNING c.status
        """,
        {"org": org_id, "cart": cart_id},
    ).fetchone()
    return row["status"] if row else None
