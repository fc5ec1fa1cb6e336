"""Journeys: the touchpoint paths abandonments took (``fct_journeys``), counted per path for
a period (abandonments in it), most common first. A path is the cart's messages in order
(``<channel>:step<N>``, ``:click`` when clicked, or ``held_out``) ending with the outcome:
``recovered``, ``converted``, ``open`` or ``lost`` (docs/analytics.md)."""

from __future__ import annotations

from uuid import UUID

import psycopg
from psycopg import sql

from . import buckets, marts
from .periods import Period

MART = "fct_journeys"
DAILY = "fct_journeys_daily"
MAX_LIMIT = 500
# fct_journeys.path joins the touchpoints and the outcome with this.
PATH_SEPARATOR = " > "


def journeys(conn: psycopg.Connection, org_id: UUID | str, period: Period, limit: int) -> dict:
    """``{period, as_of, paths: [{path: [...], carts, recovered, revenue_by_currency}]}``,
    at most ``limit`` paths, by carts then path."""
    answer = {"period": period.to_dict(), "as_of": marts.as_of_text(conn, MART, DAILY), "paths": []}
    if answer["as_of"] is None:
        return answer
    # (path, currency) groups over the period's abandonments, folded per path here (grouping
    # on the mart's path text, not on arrays, keeps it cheap): whole UTC days from the
    # day-grain mart, the partial edge days from the detail mart (buckets.py).
    detail = sql.SQL(
        """
          SELECT path, currency, count(*) AS carts,
                 count(*) FILTER (WHERE is_recovered) AS recovered,
                 sum(revenue) FILTER (WHERE is_recovered) AS revenue
          FROM {mart}
          WHERE org_id = %(org)s AND abandoned_at >= {low} AND abandoned_at < {high}
          GROUP BY path, currency
        """
    )
    query = sql.SQL(
        """
        WITH parts AS (
          {edge1}
          UNION ALL
          SELECT path, currency, carts, recovered, revenue FROM {daily}
          WHERE org_id = %(org)s AND day_start >= %(days_start)s AND day_start < %(days_end)s
          UNION ALL
          {edge2}
        )
        SELECT path, currency, sum(carts)::bigint AS carts,
               sum(recovered)::bigint AS recovered, sum(revenue) AS revenue
        FROM parts GROUP BY path, currency
        """
    ).format(
        edge1=detail.format(
            mart=marts.table(MART), low=sql.SQL("%(start)s"), high=sql.SQL("%(edge1_end)s")
        ),
        edge2=detail.format(
            mart=marts.table(MART), low=sql.SQL("%(edge2_start)s"), high=sql.SQL("%(end)s")
        ),
        daily=marts.table(DAILY),
    )
    paths: dict[str, dict] = {}
    for row in conn.execute(query, {"org": org_id, **buckets.split(period)}).fetchall():
        entry = paths.setdefault(
            row["path"], {"carts": 0, "recovered": 0, "revenue_by_currency": {}}
        )
        entry["carts"] += row["carts"]
        entry["recovered"] += row["recovered"]
        if row["revenue"] is not None:
            code = row["currency"] or marts.NO_CURRENCY
            entry["revenue_by_currency"][code] = float(row["revenue"])
    ranked = sorted(paths.items(), key=lambda item: (-item[1]["carts"], item[0]))[:limit]
    answer["paths"] = [
        {
            "path": path.split(PATH_SEPARATOR),
            "carts": entry["carts"],
            "recovered": entry["recovered"],
            "revenue_by_currency": dict(sorted(entry["revenue_by_currency"].items())),
        }
        for path, entry in ranked
    ]
    return answer


def recent_abandonments(conn: psycopg.Connection, org_id: UUID | str, limit: int = 200) -> dict:
    """The org's latest abandonments with their path and outcome, newest first (to choose
    one cart's timeline): ``{as_of, carts: [{cart_id, email, path: [...], outcome,
    abandoned_at, revenue, currency}]}``."""
    answer = {"as_of": marts.as_of_text(conn, MART, "fct_carts"), "carts": []}
    if answer["as_of"] is None:
        return answer
    rows = conn.execute(
        sql.SQL(
            """
            SELECT j.cart_id, c.email, j.path, j.outcome, j.abandoned_at, j.revenue, j.currency
            FROM {journeys} j
            LEFT JOIN {carts} c ON c.org_id = j.org_id AND c.cart_id = j.cart_id
            WHERE j.org_id = %(org)s
            ORDER BY j.abandoned_at DESC NULLS LAST, j.cart_id LIMIT %(limit)s
            """
        ).format(journeys=marts.table(MART), carts=marts.table("fct_carts")),
        {"org": org_id, "limit": limit},
    ).fetchall()
    answer["carts"] = [
        {
            "cart_id": str(r["cart_id"]),
            "email": r["email"],
            "path": r["path"].split(PATH_SEPARATOR),
            "outcome": r["outcome"],
            "abandoned_at": r["abandoned_at"].isoformat() if r["abandoned_at"] else None,
            "revenue": marts.number(r["revenue"]),
            "currency": r["currency"],
        }
        for r in rows
    ]
    return answer
