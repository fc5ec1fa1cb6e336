"""``GET /api/v1/carts``, ``/api/v1/carts/{id}`` and ``/api/v1/carts/{id}/timeline``: carts
with their events, messages and order, read inside the caller's org (RLS) so another org's
cart is simply not found."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from flask import Blueprint, g, jsonify
from pydantic import BaseModel, Field

from cartrecovery.analytics import timeline
from cartrecovery.json_rows import json_ready

from ..auth import require_key
from ..errors import ApiError
from ..openapi import request_query
from ..runtime import runtime

bp = Blueprint("carts", __name__, url_prefix="/api/v1/carts")

# Bounds what one cart's detail can return; a cart with more events is a broken client.
MAX_EVENTS = 1000

CART_COLUMNS = """cart_id, platform, external_id, email, phone, currency, total_price,
    item_count, line_items, restore_url, status, created_at, last_activity_at, abandoned_at,
    converted_at"""


class CartListQuery(BaseModel):
    status: Literal["active", "abandoned", "converted", "recovered"] | None = None
    email: str | None = Field(
        default=None, min_length=1, max_length=320, description="Matched case-insensitively."
    )
    limit: int = Field(default=50, ge=1, le=500)
    # PostgreSQL takes a bigint OFFSET: a larger one was a 500 (found by schemathesis).
    offset: int = Field(default=0, ge=0, le=2**63 - 1)


@bp.get("")
@require_key("read")
@request_query(CartListQuery)
def list_carts(query: CartListQuery):
    """List carts, newest first, filtered by status and/or email."""
    with runtime().db.tenant(g.org_id) as conn:
        rows = conn.execute(
            f"""
            SELECT {CART_COLUMNS} FROM app.carts
            WHERE org_id = %(org)s
              AND (%(status)s::text IS NULL OR status = %(status)s)
              AND (%(email)s::text IS NULL OR lower(email) = lower(%(email)s))
            ORDER BY created_at DESC, cart_id
            LIMIT %(limit)s OFFSET %(offset)s
            """,
            {
                "org": g.org_id,
                "status": query.status,
                "email": query.email,
                "limit": query.limit + 1,
                "offset": query.offset,
            },
        ).fetchall()
    return jsonify(
        {
            "carts": [json_ready(r) for r in rows[: query.limit]],
            "limit": query.limit,
            "offset": query.offset,
            "has_more": len(rows) > query.limit,
        }
    )


@bp.get("/<id>")
@require_key("read")
def get_cart(id: str):
    """One cart with its events, messages (channel, step, status, reason, events) and order."""
    try:
        cart_id = UUID(id)
    except ValueError:
        raise ApiError(404, "not_found", "cart not found") from None
    params = {"org": g.org_id, "cart": cart_id}
    with runtime().db.tenant(g.org_id) as conn:
        cart = conn.execute(
            f"SELECT {CART_COLUMNS} FROM app.carts WHERE org_id = %(org)s AND cart_id = %(cart)s",
            params,
        ).fetchone()
        if cart is None:
            raise ApiError(404, "not_found", "cart not found")
        events = conn.execute(
            """
            SELECT event_id, source, topic, received_at FROM raw.events
            WHERE org_id = %(org)s AND cart_id = %(cart)s
            ORDER BY received_at, event_id LIMIT %(max)s
            """,
            {**params, "max": MAX_EVENTS},
        ).fetchall()
        messages = conn.execute(
            """
            SELECT o.message_id, o.campaign_id, o.channel, o.step_index AS step, o.status,
                   o.reason, o.due_at, o.sent_at, o.subject,
                   coalesce(
                     (SELECT jsonb_agg(jsonb_build_object(
                                'type', e.event_type, 'occurred_at', e.occurred_at,
                                'url', e.url) ORDER BY e.occurred_at, e.event_key)
                      FROM app.message_events e
                      WHERE e.org_id = o.org_id AND e.message_id = o.message_id),
                     '[]'::jsonb) AS events
            FROM app.outbox o
            WHERE o.org_id = %(org)s AND o.cart_id = %(cart)s
            ORDER BY o.step_index, o.due_at, o.message_id
            """,
            params,
        ).fetchall()
        recovery = conn.execute(
            """
            SELECT order_id, message_id, campaign_id, channel, revenue, currency, clicked_at,
                   recovered_at
            FROM app.recoveries WHERE org_id = %(org)s AND cart_id = %(cart)s
            """,
            params,
        ).fetchone()
        # The attributed order if there is one, else the first order placed from this cart.
        order = conn.execute(
            """
            SELECT order_id, platform, external_id, email, total_price, currency,
                   financial_status, ordered_at
            FROM app.orders
            WHERE org_id = %(org)s AND (cart_id = %(cart)s OR order_id = %(order)s)
            ORDER BY order_id = %(order)s DESC, ordered_at LIMIT 1
            """,
            {**params, "order": recovery["order_id"] if recovery else None},
        ).fetchone()
    return jsonify(
        {
            **json_ready(cart),
            "events": [json_ready(e) for e in events],
            "messages": [json_ready(m) for m in messages],
            "order": json_ready(order),
            "recovered_revenue": float(recovery["revenue"]) if recovery else 0.0,
            "recovery": json_ready(recovery),
        }
    )


@bp.get("/<id>/timeline")
@require_key("read")
def get_cart_timeline(id: str):
    """One cart's history in time order: its events, messages, message events (delivered,
    open, click) and order. Read from the operational tables, current to the second (it is
    one cart's record, not a warehouse metric)."""
    try:
        cart_id = UUID(id)
    except ValueError:
        raise ApiError(404, "not_found", "cart not found") from None
    with runtime().db.tenant(g.org_id) as conn:
        body = timeline.cart_timeline(conn, g.org_id, cart_id)
    if body is None:
        raise ApiError(404, "not_found", "cart not found")
    return jsonify(body)
