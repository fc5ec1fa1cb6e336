"""One campaign's performance for a period: the message funnel per step (1-based) and
variant (sent → delivered → opened → clicked, held out apart) from ``fct_messages``, the
recoveries the ``last_touch`` model credits to each step and variant from
``fct_attribution``, and the campaign's holdout lift (:func:`..lift.lift`)."""

from __future__ import annotations

from uuid import UUID

import psycopg
from psycopg import sql

from . import marts
from .lift import lift
from .periods import Period

MARTS = ("fct_messages", "fct_attribution")


def campaign_performance(
    conn: psycopg.Connection, org_id: UUID | str, campaign_id: UUID, period: Period
) -> dict | None:
    """``{campaign_id, name, period, as_of, reporting_currency, steps: [{step, variant,
    channel, sent, delivered, opened, clicked, held_out, click_rate, recoveries,
    recovered_revenue, revenue_by_currency}], lift}``; messages count in the period by
    send (or due) time, recoveries by order time. None when the org has no such campaign."""
    campaign = conn.execute(
        "SELECT campaign_id, name FROM app.campaigns WHERE org_id = %s AND campaign_id = %s",
        (org_id, campaign_id),
    ).fetchone()
    if campaign is None:
        return None
    as_of = marts.as_of_text(conn, *MARTS)
    currency = marts.reporting_currency(conn, org_id)
    answer = {
        "campaign_id": str(campaign_id),
        "name": campaign["name"],
        "period": period.to_dict(),
        "as_of": as_of,
        "reporting_currency": currency,
        "steps": [],
        "lift": lift(conn, org_id, period, campaign_id),
    }
    if as_of is None:
        return answer
    rows = conn.execute(
        sql.SQL(
            """
            WITH funnel AS (
              SELECT step_index, variant, min(channel) AS channel,
                     count(*) FILTER (WHERE is_sent) AS sent,
                     count(*) FILTER (WHERE is_delivered) AS delivered,
                     count(*) FILTER (WHERE is_opened) AS opened,
                     count(*) FILTER (WHERE is_clicked) AS clicked,
                     count(*) FILTER (WHERE is_held_out) AS held_out
              FROM {messages}
              WHERE org_id = %(org)s AND campaign_id = %(campaign)s
                AND (is_sent OR is_held_out)
                AND coalesce(sent_at, due_at) >= %(start)s AND coalesce(sent_at, due_at) < %(end)s
              GROUP BY step_index, variant
            ),
            credited AS (
              SELECT step_index, variant, coalesce(currency, %(none)s) AS currency,
                     sum(credit) AS recoveries, sum(revenue) AS revenue,
                     bool_or(currency IS NOT DISTINCT FROM %(cur)s) AS is_reporting
              FROM {attribution}
              WHERE org_id = %(org)s AND campaign_id = %(campaign)s AND model = 'last_touch'
                AND credit > 0
                AND ordered_at >= %(start)s AND ordered_at < %(end)s
              GROUP BY 1, 2, 3
            ),
            recovered AS (
              SELECT step_index, variant, sum(recoveries) AS recoveries,
                     coalesce(sum(revenue) FILTER (WHERE is_reporting), 0) AS recovered_revenue,
                     jsonb_object_agg(currency, revenue ORDER BY currency) AS revenue_by_currency
              FROM credited GROUP BY 1, 2
            )
            SELECT coalesce(f.step_index, r.step_index) AS step,
                   coalesce(f.variant, r.variant) AS variant, f.channel,
                   coalesce(f.sent, 0) AS sent, coalesce(f.delivered, 0) AS delivered,
                   coalesce(f.opened, 0) AS opened, coalesce(f.clicked, 0) AS clicked,
                   coalesce(f.held_out, 0) AS held_out,
                   coalesce(r.recoveries, 0) AS recoveries,
                   coalesce(r.recovered_revenue, 0) AS recovered_revenue,
                   r.revenue_by_currency
            FROM funnel f FULL JOIN recovered r
              ON r.step_index = f.step_index AND r.variant = f.variant
            ORDER BY step, variant
            """
        ).format(messages=marts.table("fct_messages"), attribution=marts.table("fct_attribution")),
        {
            "org": org_id,
            "campaign": campaign_id,
            "start": period.start,
            "end": period.end,
            "cur": currency,
            "none": marts.NO_CURRENCY,
        },
    ).fetchall()
    answer["steps"] = [
        {
            "step": row["step"],
            "variant": row["variant"],
            "channel": row["channel"],
            "sent": row["sent"],
            "delivered": row["delivered"],
            "opened": row["opened"],
            "clicked": row["clicked"],
            "held_out": row["held_out"],
            "click_rate": row["clicked"] / row["sent"] if row["sent"] else None,
            "recoveries": float(row["recoveries"]),
            "recovered_revenue": float(row["recovered_revenue"]),
            "revenue_by_currency": marts.by_currency(row["revenue_by_currency"]),
        }
        for row in rows
    ]
    return answer
