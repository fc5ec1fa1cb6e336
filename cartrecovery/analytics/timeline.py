"""One cart's history in time order: its raw events, messages (scheduled, sent, held out),
their delivery/open/click events and the order.

Unlike the rest of this package it reads the operational tables (``raw.events``,
``app.outbox``, ``app.message_events``, ``app.orders``), not the marts: it is one cart's
own record, current to the second, not a metric."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import psycopg

from . import marts

# A cart with a runaway client could have thousands of raw events: keep the answer bounded.
MAX_ITEMS = 1000


def cart_timeline(conn: psycopg.Connection, org_id: UUID, cart_id: UUID) -> dict | None:
    """``{cart_id, status, items: [{at, kind, ...}], truncated}``, ``kind`` one of
    ``event`` (a raw store/tracking event: source, topic), ``message`` (a message created:
    channel, step (1-based), status, due_at, sent_at), ``message_event`` (delivered, open,
    click…: type, message_id) and ``order`` (total, currency); ordered by time. None when the
    org has no such cart."""
    cart = conn.execute(
        "SELECT cart_id, status, created_at, abandoned_at FROM app.carts"
        " WHERE org_id = %s AND cart_id = %s",
        (org_id, cart_id),
    ).fetchone()
    if cart is None:
        return None
    rows = conn.execute(
        """
        SELECT * FROM (
          SELECT coalesce(occurred_at, received_at) AS at, 'event' AS kind,
                 event_id::text AS id, source AS a, topic AS b, NULL::text AS c,
                 NULL::int AS step, NULL::timestamptz AS due_at, NULL::timestamptz AS sent_at,
                 NULL::numeric AS total
          FROM raw.events WHERE org_id = %(org)s AND cart_id = %(cart)s
          UNION ALL
          SELECT coalesce(sent_at, due_at, created_at), 'message', message_id::text, channel,
                 status, campaign_id::text, step_index + 1, due_at, sent_at, NULL
          FROM app.outbox WHERE org_id = %(org)s AND cart_id = %(cart)s
          UNION ALL
          SELECT e.occurred_at, 'message_event', e.message_id::text, e.event_type, o.channel,
                 e.url, o.step_index + 1, NULL, NULL, NULL
          FROM app.message_events e
          JOIN app.outbox o ON o.org_id = e.org_id AND o.message_id = e.message_id
          WHERE e.org_id = %(org)s AND o.cart_id = %(cart)s
          UNION ALL
          SELECT ordered_at, 'order', order_id::text, currency, external_id, NULL, NULL, NULL,
                 NULL, total_price
          FROM app.orders WHERE org_id = %(org)s AND cart_id = %(cart)s
        ) t
        ORDER BY at NULLS LAST, kind, id
        LIMIT %(max)s
        """,
        {"org": org_id, "cart": cart_id, "max": MAX_ITEMS + 1},
    ).fetchall()
    return {
        "cart_id": str(cart_id),
        "status": cart["status"],
        "created_at": _iso(cart["created_at"]),
        "abandoned_at": _iso(cart["abandoned_at"]),
        "items": [_item(r) for r in rows[:MAX_ITEMS]],
        "truncated": len(rows) > MAX_ITEMS,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _item(row: dict) -> dict:
    kind, at = row["kind"], _iso(row["at"])
    if kind == "event":
        return {
            "at": at,
            "kind": kind,
            "event_id": row["id"],
            "source": row["a"],
            "topic": row["b"],
        }
    if kind == "message":
        return {
            "at": at,
            "kind": kind,
            "message_id": row["id"],
            "channel": row["a"],
            "status": row["b"],
            "campaign_id": row["c"],
            "step": row["step"],
            "due_at": _iso(row["due_at"]),
            "sent_at": _iso(row["sent_at"]),
        }
    if kind == "message_event":
        return {
            "at": at,
            "kind": kind,
            "message_id": row["id"],
            "type": row["a"],
            "channel": row["b"],
            "url": row["c"],
            "step": row["step"],
        }
    return {
        "at": at,
        "kind": kind,
        "order_id": row["id"],
        "currency": row["a"] or marts.NO_CURRENCY,
        "external_id": row["b"],
        "total": marts.number(row["total"]),
    }
