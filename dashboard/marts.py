"""Reads of the dbt marts (``analytics_marts``) for the Attribution, Journeys and Insights pages.

The marts define every metric (docs/analytics.md); these functions only select, filter by
period and group, never re-derive a metric. Each runs inside ``db.tenant(org)`` (the marts
have row-level security) and returns plain rows; ``dashboard.data`` caches them per org.
Money stays per currency: every revenue row carries its ``currency``.
"""

from __future__ import annotations

from datetime import datetime

import psycopg

MODELS = ("last_touch", "first_touch", "linear", "time_decay")
# What a chart groups recovered revenue by, as SQL over fct_attribution ``a`` and
# dim_campaigns ``c`` (fixed strings: never built from user input).
GROUPS = {
    "channel": "a.channel",
    "campaign": "coalesce(c.campaign_name, 'unknown campaign')",
    "step": "'step ' || a.step_index",
}


def built_at(conn: psycopg.Connection, org_id) -> datetime | None:
    """When the org's marts were last built (None: never, so mart pages are not shown)."""
    exists = conn.execute(
        "SELECT to_regclass('analytics_marts.fct_journeys') IS NOT NULL AS built"
    ).fetchone()
    if not exists["built"]:
        return None
    row = conn.execute(
        "SELECT max(built_at) AS built_at FROM analytics_marts.fct_journeys WHERE org_id = %s",
        (org_id,),
    ).fetchone()
    return row["built_at"]


def attribution(
    conn: psycopg.Connection, org_id, model: str, group_by: str, start: datetime, bucket: str
) -> list[dict]:
    """Recovered revenue under ``model`` per ``bucket`` (``hour``/``day``), group and currency,
    for orders placed since ``start``: ``{at, group, currency, revenue, orders}``."""
    if model not in MODELS or group_by not in GROUPS or bucket not in ("hour", "day"):
        raise ValueError("unknown model, grouping or bucket")
    rows = conn.execute(
        f"""
        SELECT date_trunc(%(bucket)s, a.ordered_at) AS at, {GROUPS[group_by]} AS "group",
               a.currency, sum(a.revenue) AS revenue, count(DISTINCT a.order_id) AS orders
        FROM analytics_marts.fct_attribution a
        LEFT JOIN analytics_marts.dim_campaigns c
          ON c.org_id = a.org_id AND c.campaign_id = a.campaign_id
        WHERE a.org_id = %(org)s AND a.model = %(model)s AND a.ordered_at >= %(start)s
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        """,
        {"org": org_id, "model": model, "start": start, "bucket": bucket},
    ).fetchall()
    return [dict(r) for r in rows]


def holdout_lift(conn: psycopg.Connection, org_id) -> list[dict]:
    """``fct_holdout_lift`` rows (org scope first, then per campaign, with its name)."""
    rows = conn.execute(
        """
        SELECT l.scope, coalesce(c.campaign_name, 'All campaigns') AS campaign,
               l.reporting_currency, l.messaged_carts, l.held_out_carts,
               l.messaged_rate, l.held_out_rate, l.rate_lift, l.rate_lift_low, l.rate_lift_high,
               l.incremental_recoveries, l.incremental_revenue, l.incremental_revenue_low,
               l.incremental_revenue_high, l.is_meaningful
        FROM analytics_marts.fct_holdout_lift l
        LEFT JOIN analytics_marts.dim_campaigns c
          ON c.org_id = l.org_id AND c.campaign_id = l.campaign_id
        WHERE l.org_id = %s
        ORDER BY l.scope = 'org' DESC, campaign
        """,
        (org_id,),
    ).fetchall()
    return [dict(r) for r in rows]


def journey_paths(conn: psycopg.Connection, org_id, start: datetime, limit: int) -> list[dict]:
    """The most common touchpoint paths of carts abandoned since ``start``:
    ``{path, touchpoints, carts, recovered, revenue_by_currency}``."""
    rows = conn.execute(
        """
        SELECT path, touchpoints, carts, recovered, revenue_by_currency
        FROM analytics_marts.fct_journey_paths
        WHERE org_id = %s AND last_abandoned_at >= %s
        ORDER BY carts DESC, path LIMIT %s
        """,
        (org_id, start, limit),
    ).fetchall()
    return [dict(r) for r in rows]


def journeys(conn: psycopg.Connection, org_id, limit: int = 200) -> list[dict]:
    """The latest abandonments with their path and outcome (to pick one cart's timeline)."""
    rows = conn.execute(
        """
        SELECT j.cart_id::text AS cart_id, c.email, j.path, j.outcome, j.abandoned_at,
               j.revenue, j.currency
        FROM analytics_marts.fct_journeys j
        LEFT JOIN app.carts c ON c.org_id = j.org_id AND c.cart_id = j.cart_id
        WHERE j.org_id = %s ORDER BY j.abandoned_at DESC NULLS LAST LIMIT %s
        """,
        (org_id, limit),
    ).fetchall()
    return [dict(r) for r in rows]


def cart_timeline(conn: psycopg.Connection, org_id, cart_id: str) -> list[dict]:
    """One cart's ordered history: its events (``fct_cart_events``) and its messages with
    their opens and clicks (``fct_messages``), oldest first: ``{at, kind, detail}``."""
    rows = conn.execute(
        """
        SELECT occurred_at AS at, 'cart' AS kind,
               topic || coalesce(' · ' || amount::text || ' ' || currency, '') AS detail
        FROM analytics_marts.fct_cart_events WHERE org_id = %(org)s AND cart_id = %(cart)s
        UNION ALL
        SELECT sent_at, 'message', channel || ' step ' || step_index
               || coalesce(' (' || variant || ')', '') || ' sent'
        FROM analytics_marts.fct_messages
        WHERE org_id = %(org)s AND cart_id = %(cart)s AND sent_at IS NOT NULL
        UNION ALL
        SELECT first_opened_at, 'message', channel || ' step ' || step_index || ' opened'
        FROM analytics_marts.fct_messages
        WHERE org_id = %(org)s AND cart_id = %(cart)s AND first_opened_at IS NOT NULL
        UNION ALL
        SELECT first_clicked_at, 'message', channel || ' step ' || step_index || ' clicked'
        FROM analytics_marts.fct_messages
        WHERE org_id = %(org)s AND cart_id = %(cart)s AND first_clicked_at IS NOT NULL
        ORDER BY 1, 2
        """,
        {"org": org_id, "cart": cart_id},
    ).fetchall()
    return [dict(r) for r in rows]


def step_performance(conn: psycopg.Connection, org_id) -> list[dict]:
    """Per campaign, step and variant: messages sent, opened, clicked (fct_message_funnel)
    and recoveries (fct_recoveries, last touch), all time."""
    rows = conn.execute(
        """
        WITH funnel AS (
          SELECT campaign_id, step_index, coalesce(variant, '') AS variant,
                 sum(messages_sent) AS sent, sum(messages_opened) AS opened,
                 sum(messages_clicked) AS clicked
          FROM analytics_marts.fct_message_funnel WHERE org_id = %(org)s
          GROUP BY 1, 2, 3
        ), recovered AS (
          SELECT campaign_id, step_index, coalesce(variant, '') AS variant,
                 count(*) AS recoveries
          FROM analytics_marts.fct_recoveries WHERE org_id = %(org)s
          GROUP BY 1, 2, 3
        )
        SELECT f.campaign_id::text AS campaign_id,
               coalesce(c.campaign_name, 'unknown campaign') AS campaign,
               f.step_index, f.variant, f.sent, f.opened, f.clicked,
               coalesce(r.recoveries, 0) AS recoveries
        FROM funnel f
        LEFT JOIN recovered r USING (campaign_id, step_index, variant)
        LEFT JOIN analytics_marts.dim_campaigns c
          ON c.org_id = %(org)s AND c.campaign_id = f.campaign_id
        ORDER BY campaign, f.step_index, f.variant
        """,
        {"org": org_id},
    ).fetchall()
    return [dict(r) for r in rows]


def recovery_hours(conn: psycopg.Connection, org_id) -> list[dict]:
    """Recoveries per hour of day (UTC) of the order, all time: ``{hour, recoveries}``."""
    rows = conn.execute(
        """
        SELECT extract(hour FROM ordered_at AT TIME ZONE 'UTC')::int AS hour,
               count(*) AS recoveries
        FROM analytics_marts.fct_recoveries WHERE org_id = %s
        GROUP BY 1 ORDER BY 1
        """,
        (org_id,),
    ).fetchall()
    return [dict(r) for r in rows]
