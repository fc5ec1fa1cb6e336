"""Recovered revenue per channel, campaign, step or variant under one attribution model,
read from ``fct_attribution`` (one row per order × eligible touch × model; docs/analytics.md)
and, for the whole days of a period, its day-grain sums ``fct_attribution_daily``.

An order counts in the period when it was placed in it; a group appears when the model gives
it some credit. ``recoveries`` of a group is the sum
of its credits: whole orders under ``last_touch``/``first_touch``, shares under ``linear``
and ``time_decay``; over all groups it is the number of recovered orders. Money is reported
per currency (``revenue_by_currency``); the single numbers (``recovered_revenue``,
``total_recovered_revenue``) count only orders in the org's reporting currency.
"""

from __future__ import annotations

from uuid import UUID

import psycopg
from psycopg import sql

from . import buckets, marts
from .periods import Period

MODELS = ("last_touch", "first_touch", "linear", "time_decay")
# group_by value → the mart column it groups on (the answer's key is the group_by value).
GROUPS = {
    "channel": "channel",
    "campaign": "campaign_id",
    "step": "step_index",
    "variant": "variant",
}
MART = "fct_attribution"
DAILY = "fct_attribution_daily"


def attribution(
    conn: psycopg.Connection, org_id: UUID | str, model: str, group_by: str, period: Period
) -> dict:
    """``{model, group_by, period, as_of, reporting_currency, rows, total_recovered_revenue,
    total_recoveries, total_revenue_by_currency}``; rows are
    ``{<group_by>, recoveries, recovered_revenue, revenue_by_currency}``, largest revenue in
    the reporting currency first. ``step`` is the 1-based step index. Raises ValueError for
    an unknown model or group."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}")
    if group_by not in GROUPS:
        raise ValueError(f"group_by must be one of {', '.join(GROUPS)}")
    as_of, currency = marts.as_of_and_currency(conn, org_id, MART, DAILY)
    answer = {
        "model": model,
        "group_by": group_by,
        "period": period.to_dict(),
        "as_of": as_of,
        "reporting_currency": currency,
        "rows": [],
        "total_recoveries": 0.0,
        "total_recovered_revenue": 0.0,
        "total_revenue_by_currency": {},
    }
    if answer["as_of"] is None:
        return answer
    column = sql.Identifier(GROUPS[group_by])
    # Whole UTC days from the day-grain mart, the period's partial edge days from the detail
    # mart (buckets.py): the same sums as over every credited touch.
    query = sql.SQL(
        """
        WITH parts AS (
          SELECT {column} AS key, currency, credit, revenue FROM {mart}
          WHERE org_id = %(org)s AND model = %(model)s AND credit > 0
            AND ordered_at >= %(start)s AND ordered_at < %(edge1_end)s
          UNION ALL
          SELECT {column}, currency, credit, revenue FROM {daily}
          WHERE org_id = %(org)s AND model = %(model)s
            AND day_start >= %(days_start)s AND day_start < %(days_end)s
          UNION ALL
          SELECT {column}, currency, credit, revenue FROM {mart}
          WHERE org_id = %(org)s AND model = %(model)s AND credit > 0
            AND ordered_at >= %(edge2_start)s AND ordered_at < %(end)s
        ),
        credited AS (
          SELECT key, currency, sum(credit) AS recoveries, sum(revenue) AS revenue
          FROM parts GROUP BY key, currency
        )
        SELECT key, sum(recoveries) AS recoveries,
               coalesce(sum(revenue) FILTER (WHERE currency IS NOT DISTINCT FROM %(cur)s), 0)
                 AS recovered_revenue,
               jsonb_object_agg(coalesce(currency, %(none)s), revenue ORDER BY currency)
                 AS revenue_by_currency
        FROM credited GROUP BY key
        ORDER BY recovered_revenue DESC, key NULLS LAST
        """
    ).format(column=column, mart=marts.table(MART), daily=marts.table(DAILY))
    rows = conn.execute(
        query,
        {
            "org": org_id,
            "model": model,
            **buckets.split(period),
            "cur": currency,
            "none": marts.NO_CURRENCY,
        },
    ).fetchall()
    totals: dict[str, float] = {}
    for row in rows:
        key = row["key"]
        answer["rows"].append(
            {
                group_by: str(key) if isinstance(key, UUID) else key,
                "recoveries": float(row["recoveries"]),
                "recovered_revenue": float(row["recovered_revenue"]),
                "revenue_by_currency": marts.by_currency(row["revenue_by_currency"]),
            }
        )
        for code, amount in row["revenue_by_currency"].items():
            totals[code] = totals.get(code, 0.0) + float(amount)
    answer["total_recoveries"] = round(sum(r["recoveries"] for r in answer["rows"]), 9)
    answer["total_recovered_revenue"] = sum(r["recovered_revenue"] for r in answer["rows"])
    answer["total_revenue_by_currency"] = dict(sorted(totals.items()))
    return answer


BUCKETS = ("hour", "day")


def attribution_series(
    conn: psycopg.Connection,
    org_id: UUID | str,
    model: str,
    group_by: str,
    period: Period,
    bucket: str,
) -> dict:
    """:func:`attribution` spread over time: the same orders (placed in the period, credit >
    0) and groups, per ``bucket`` (``hour`` or ``day``, UTC) of the order time. ``{model,
    group_by, period, bucket, as_of, rows: [{at, <group_by>, currency, recoveries,
    revenue}]}``, by time then group then currency; summed over ``at`` and ``currency`` a
    group's figures are those :func:`attribution` answers. Raises ValueError as it does."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}")
    if group_by not in GROUPS:
        raise ValueError(f"group_by must be one of {', '.join(GROUPS)}")
    if bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}")
    answer = {
        "model": model,
        "group_by": group_by,
        "period": period.to_dict(),
        "bucket": bucket,
        "as_of": marts.as_of_text(conn, MART),
        "rows": [],
    }
    if answer["as_of"] is None:
        return answer
    column = sql.Identifier(GROUPS[group_by])
    query = sql.SQL(
        """
        SELECT date_trunc(%(bucket)s, ordered_at, 'UTC') AS at, {column} AS key,
               coalesce(currency, %(none)s) AS currency, sum(credit) AS recoveries,
               sum(revenue) AS revenue
        FROM {mart}
        WHERE org_id = %(org)s AND model = %(model)s AND credit > 0
          AND ordered_at >= %(start)s AND ordered_at < %(end)s
        GROUP BY 1, 2, 3 ORDER BY 1, 2 NULLS LAST, 3
        """
    ).format(column=column, mart=marts.table(MART))
    rows = conn.execute(
        query,
        {
            "org": org_id,
            "model": model,
            "start": period.start,
            "end": period.end,
            "bucket": bucket,
            "none": marts.NO_CURRENCY,
        },
    ).fetchall()
    answer["rows"] = [
        {
            "at": row["at"].isoformat(),
            group_by: str(row["key"]) if isinstance(row["key"], UUID) else row["key"],
            "currency": row["currency"],
            "recoveries": float(row["recoveries"]),
            "revenue": float(row["revenue"]),
        }
        for row in rows
    ]
    return answer


def recoveries_by_hour(conn: psycopg.Connection, org_id: UUID | str, period: Period) -> dict:
    """Recovered orders placed in the period per hour of day (UTC) of the order:
    ``{period, as_of, hours: [{hour, recoveries}]}``, hours with none left out. A recovery
    is an order with an eligible touch (every order with a ``last_touch`` credit), so the
    total equals :func:`attribution`'s ``total_recoveries`` under ``last_touch``."""
    answer = {"period": period.to_dict(), "as_of": marts.as_of_text(conn, MART), "hours": []}
    if answer["as_of"] is None:
        return answer
    rows = conn.execute(
        sql.SQL(
            """
            SELECT extract(hour FROM ordered_at AT TIME ZONE 'UTC')::int AS hour,
                   count(DISTINCT order_id) AS recoveries
            FROM {mart}
            WHERE org_id = %(org)s AND model = 'last_touch' AND credit > 0
              AND ordered_at >= %(start)s AND ordered_at < %(end)s
            GROUP BY 1 ORDER BY 1
            """
        ).format(mart=marts.table(MART)),
        {"org": org_id, "start": period.start, "end": period.end},
    ).fetchall()
    answer["hours"] = [{"hour": r["hour"], "recoveries": r["recoveries"]} for r in rows]
    return answer
