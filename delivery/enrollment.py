"""Abandonment and enrollment: idle carts become abandoned and join one campaign each.

Both happen in the scheduler's transaction, so a cart is marked abandoned exactly when its
enrollment and outbox rows are written; the unique keys on app.enrollments (org, cart) and
app.outbox (org, cart, campaign, step) make a second attempt a no-op.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal, InvalidOperation

import psycopg

RECIPIENT_FIELD = {"email": "email", "sms": "phone"}


def mark_abandoned(conn: psycopg.Connection, limit: int) -> list[dict]:
    """Active carts with an email, idle past their org's timeout → 'abandoned' (returned)."""
    return conn.execute(
        """
        WITH idle AS (
          SELECT c.org_id, c.cart_id
          FROM app.carts c JOIN app.orgs o ON o.org_id = c.org_id
          WHERE c.status = 'active'
            AND c.email IS NOT NULL AND c.email <> ''
            AND c.last_activity_at < now() - make_interval(secs => o.abandonment_timeout_seconds)
          ORDER BY c.last_activity_at
          LIMIT %s
          FOR UPDATE OF c SKIP LOCKED
        )
        UPDATE app.carts c
        SET status = 'abandoned', abandoned_at = now(), updated_at = now()
        FROM idle
        WHERE c.org_id = idle.org_id AND c.cart_id = idle.cart_id
        RETURNING c.*
        """,
        (limit,),
    ).fetchall()


def _decimal(value) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def campaign_matches(conditions: dict | None, cart: dict) -> bool:
    """Whether a cart satisfies ``{cart_value_min?, cart_value_max?, currency?}`` (inclusive).

    A condition that cannot be read matches nothing, so a bad campaign never sends widely.
    """
    conditions = conditions or {}
    if not isinstance(conditions, dict):
        return False
    total = _decimal(cart.get("total_price")) or Decimal(0)
    for key, ok in (("cart_value_min", lambda v: total >= v),
                    ("cart_value_max", lambda v: total <= v)):
        if conditions.get(key) is not None:
            bound = _decimal(conditions[key])
            if bound is None or not ok(bound):
                return False
    currency = conditions.get("currency")
    if currency:
        if (cart.get("currency") or "").upper() != str(currency).upper():
            return False
    return True


def choose_campaign(conn: psycopg.Connection, cart: dict) -> dict | None:
    """The highest-priority active campaign of the cart's org whose conditions match."""
    campaigns = conn.execute(
        """
        SELECT campaign_id, trigger_conditions, sequence_steps FROM app.campaigns
        WHERE org_id = %s AND status = 'active'
        ORDER BY priority DESC, created_at, campaign_id
        """,
        (cart["org_id"],),
    ).fetchall()
    for campaign in campaigns:
        if campaign_matches(campaign["trigger_conditions"], cart):
            return campaign
    return None


def enroll(conn: psycopg.Connection, cart: dict) -> int:
    """Enroll an abandoned cart and write its outbox rows; return how many rows were written.

    Each step becomes a row due at ``abandoned_at + delay_seconds``. A cart already enrolled
    (or with no matching campaign) writes nothing.
    """
    campaign = choose_campaign(conn, cart)
    if campaign is None:
        return 0
    enrollment = conn.execute(
        """
        INSERT INTO app.enrollments (org_id, cart_id, campaign_id) VALUES (%s, %s, %s)
        ON CONFLICT (org_id, cart_id) DO NOTHING
        RETURNING enrollment_id
        """,
        (cart["org_id"], cart["cart_id"], campaign["campaign_id"]),
    ).fetchone()
    if enrollment is None:
        return 0
    steps = campaign["sequence_steps"] if isinstance(campaign["sequence_steps"], list) else []
    written = 0
    for index, step in enumerate(steps):
        if not isinstance(step, dict):
            continue
        channel = step.get("channel") or "email"
        if channel not in RECIPIENT_FIELD and channel != "push":
            continue
        try:
            delay = max(0, int(step.get("delay_seconds") or 0))
        except (TypeError, ValueError):
            continue
        recipient = cart.get(RECIPIENT_FIELD.get(channel, ""))
        row = conn.execute(
            """
            INSERT INTO app.outbox (org_id, enrollment_id, cart_id, campaign_id, step_index,
                                    channel, recipient, subject, template, due_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (org_id, cart_id, campaign_id, step_index) DO NOTHING
            RETURNING message_id
            """,
            (cart["org_id"], enrollment["enrollment_id"], cart["cart_id"],
             campaign["campaign_id"], index, channel, recipient, step.get("subject"),
             step.get("template"), cart["abandoned_at"] + timedelta(seconds=delay)),
        ).fetchone()
        written += row is not None
    return written
