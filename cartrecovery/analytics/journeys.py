"""Journeys: the touchpoint paths abandonments took (``fct_journeys``), counted per path for
a period (abandonments in it), most common first. A path is the cart's messages in order
(``<channel>:step<N>``, ``:click`` when clicked, or ``held_out``) ending with the outcome:
``recovered``, ``converted``, ``open`` or ``lost`` (docs/analytics.md)."""

from __future__ import annotations

from uuid import UUID

import psycopg
from psycopg import sql

from . import marts
from .periods import Period

MART = "fct_journeys"
MAX_LIMIT = 500


def journeys(conn: psycopg.Connection, org_id: UUID | str, period: Period, limit: int) -> dict:
    """``{period, as_of, paths: [{path: [...], carts, recovered, revenue_by_currency}]}``,
    at most ``limit`` paths, by carts then path."""
    answer = {"period": period.to_dict(), "as_of": marts.as_of_text(conn, MART), "paths": []}
    if answer["as_of"] is None:
        return answer
    query = sql.SQL(
        """
        WITH chosen AS (
          SELECT touchpoints || outcome AS path, is_recovered, currency, revenue
          FROM {mart}
          WHERE org_id = %(org)s AND abandoned_at >= %(start)s AND abandoned_at < %(end)s
        ),
        per_currency AS (
          SELECT path, coalesce(currency, %(none)s) AS currency, sum(revenue) AS revenue
          FROM chosen WHERE is_recovered GROUP BY 1, 2
        )
        SELECT c.path, count(*) AS carts, count(*) FILTER (WHERE c.is_recovered) AS recovered,
               (SELECT jsonb_object_agg(p.currency, p.revenue ORDER BY p.currency)
                  FROM per_currency p WHERE p.path = c.path) AS revenue_by_currency
        FROM chosen c GROUP BY c.path
        ORDER BY carts DESC, c.path LIMIT %(limit)s
        """
    ).format(mart=marts.table(MART))
    rows = conn.execute(
        query,
        {
            "org": org_id,
            "start": period.start,
            "end": period.end,
            "limit": limit,
            "none": marts.NO_CURRENCY,
        },
    ).fetchall()
    answer["paths"] = [
        {
            "path": list(row["path"]),
            "carts": row["carts"],
            "recovered": row["recovered"],
            "revenue_by_currency": marts.by_currency(row["revenue_by_currency"]),
        }
        for row in rows
    ]
    return answer
