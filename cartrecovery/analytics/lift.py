"""Holdout lift for a period: messaged carts against held-out carts (outbox status
``held_out``) of one campaign or of the whole org, from ``fct_holdout_carts`` (abandonments
in the period; whole days from its day-grain sums ``fct_holdout_carts_daily``). Semantics
in docs/analytics.md ("Holdout and lift"):

- recovery rate = carts with an order within the longest window after abandonment (touched
  or not) / carts; lift = messaged − held out, 95% normal interval;
- incremental recoveries = rate lift × messaged carts;
- revenue per cart in the reporting currency (other currencies count 0), difference with a
  95% Welch interval (``cartrecovery.stats.compare``, frequentist, absolute);
  incremental revenue = that difference × messaged carts.

Below :data:`MIN_HELD_OUT` held-out carts the estimate is not meaningful: ``status`` says so
and every estimate is null.
"""

from __future__ import annotations

import math
from uuid import UUID

import psycopg
from psycopg import sql
from scipy.stats import norm

from cartrecovery import stats

from . import buckets, marts
from .periods import Period

MART = "fct_holdout_carts"
DAILY = "fct_holdout_carts_daily"
MIN_HELD_OUT = 30
CONFIDENCE = 0.95
_ESTIMATES = (
    "rate_lift",
    "rate_lift_ci",
    "incremental_recoveries",
    "incremental_recoveries_ci",
    "revenue_per_cart_lift",
    "revenue_per_cart_lift_ci",
    "incremental_revenue",
    "incremental_revenue_ci",
)


def lift(
    conn: psycopg.Connection,
    org_id: UUID | str,
    period: Period,
    campaign_id: UUID | None = None,
    *,
    known: dict | None = None,
) -> dict:
    """``{period, as_of, campaign_id, reporting_currency, status, reason, messaged, held_out,
    rate_lift(+_ci), incremental_recoveries(+_ci), revenue_per_cart_lift(+_ci),
    incremental_revenue(+_ci)}``. ``messaged``/``held_out`` are ``{carts, recoveries, rate,
    revenue, revenue_per_cart}``. ``status``: ``ok``, ``not_meaningful`` (fewer than 30
    held-out carts, estimates null) or ``not_built`` (no warehouse yet). ``known``: the
    ``as_of`` (ISO text or None) and ``reporting_currency`` a caller that read them already
    passes, saving their queries (campaign performance)."""
    if known is not None:
        as_of, currency = known["as_of"], known["reporting_currency"]
    else:
        as_of, currency = marts.as_of_and_currency(conn, org_id, MART, DAILY)
    rows = []
    if as_of is not None:
        rows = conn.execute(
            sums_query(), {"org": org_id, "campaign": campaign_id, **buckets.split(period)}
        ).fetchall()
    return answer(period, as_of, campaign_id, currency, rows)


def sums_query() -> sql.Composed:
    """Per lift group (messaged, held_out) the period's ``carts``, ``recoveries``,
    ``revenue``, ``revenue_squares`` and the build's reporting ``currency``; parameters
    ``org``, ``campaign`` (None: the whole org) and :func:`buckets.split`'s. Whole UTC days
    come from the day-grain mart, the partial edge days from the detail mart (buckets.py):
    the same sums as over every cart."""
    detail = sql.SQL(
        """
          SELECT lift_group, count(*) AS carts,
                 count(*) FILTER (WHERE is_converted) AS conversions,
                 coalesce(sum(revenue), 0) AS revenue,
                 coalesce(sum(revenue * revenue), 0) AS revenue_squares,
                 max(reporting_currency) AS currency
          FROM {mart}
          WHERE org_id = %(org)s AND abandoned_at >= {low} AND abandoned_at < {high}
            AND (%(campaign)s::uuid IS NULL OR campaign_id = %(campaign)s::uuid)
          GROUP BY lift_group
        """
    )
    return sql.SQL(
        """
        WITH parts AS (
          {edge1}
          UNION ALL
          SELECT lift_group, carts, conversions, revenue, revenue_squares,
                 reporting_currency
          FROM {daily}
          WHERE org_id = %(org)s AND day_start >= %(days_start)s
            AND day_start < %(days_end)s
            AND (%(campaign)s::uuid IS NULL OR campaign_id = %(campaign)s::uuid)
          UNION ALL
          {edge2}
        )
        SELECT lift_group, sum(carts)::bigint AS carts,
               sum(conversions)::bigint AS recoveries, sum(revenue) AS revenue,
               sum(revenue_squares) AS revenue_squares, max(currency) AS currency
        FROM parts GROUP BY lift_group
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


def answer(
    period: Period,
    as_of: str | None,
    campaign_id: UUID | None,
    currency: str | None,
    rows: list[dict],
) -> dict:
    """The lift answer from :func:`sums_query`'s rows (none when not built); ``currency``
    the reporting currency, unless the rows name the one the build used."""
    sums = {
        group: {"carts": 0, "recoveries": 0, "revenue": 0.0, "revenue_squares": 0.0}
        for group in ("messaged", "held_out")
    }
    for row in rows:
        sums[row["lift_group"]] = {k: marts.number(row[k]) for k in sums["messaged"]}
        # The revenue column was computed in the currency the build used.
        currency = row["currency"] or currency
    found: dict = {
        "period": period.to_dict(),
        "as_of": as_of,
        "campaign_id": str(campaign_id) if campaign_id else None,
        "reporting_currency": currency,
        "messaged": _group(sums["messaged"]),
        "held_out": _group(sums["held_out"]),
        **dict.fromkeys(_ESTIMATES),
    }
    if as_of is None:
        return {**found, "status": "not_built", "reason": "the warehouse has not been built"}
    if sums["held_out"]["carts"] < MIN_HELD_OUT:
        return {
            **found,
            "status": "not_meaningful",
            "reason": f"{sums['held_out']['carts']} held-out carts; the estimate is not yet "
            f"meaningful below {MIN_HELD_OUT}",
        }
    if sums["messaged"]["carts"] == 0:
        return {**found, "status": "not_meaningful", "reason": "no messaged carts"}
    return {**found, **_estimates(sums), "status": "ok", "reason": None}


def _group(s: dict) -> dict:
    carts = s["carts"]
    return {
        "carts": carts,
        "recoveries": s["recoveries"],
        "rate": s["recoveries"] / carts if carts else None,
        "revenue": float(s["revenue"]),
        "revenue_per_cart": float(s["revenue"]) / carts if carts else None,
    }


def _estimates(sums: dict) -> dict:
    messaged, held = sums["messaged"], sums["held_out"]
    n1, n0 = messaged["carts"], held["carts"]
    p1, p0 = messaged["recoveries"] / n1, held["recoveries"] / n0
    rate_lift = p1 - p0
    z = float(norm.ppf(0.5 + CONFIDENCE / 2))
    half = z * math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    rate_ci = [rate_lift - half, rate_lift + half]

    revenue = stats.compare(
        "mean",
        stats.ArmStats(n0, float(held["revenue"]), float(held["revenue_squares"])),
        stats.ArmStats(n1, float(messaged["revenue"]), float(messaged["revenue_squares"])),
        stats.CompareSettings(
            engine="frequentist", difference_type="absolute", alpha=1 - CONFIDENCE
        ),
    )
    per_cart = float(messaged["revenue"]) / n1 - float(held["revenue"]) / n0
    # A group without variance (e.g. no revenue at all) has no Welch interval: null.
    per_cart_ci = None if revenue.error else [float(revenue.ci[0]), float(revenue.ci[1])]
    return {
        "rate_lift": rate_lift,
        "rate_lift_ci": rate_ci,
        "incremental_recoveries": rate_lift * n1,
        "incremental_recoveries_ci": [end * n1 for end in rate_ci],
        "revenue_per_cart_lift": per_cart,
        "revenue_per_cart_lift_ci": per_cart_ci,
        "incremental_revenue": per_cart * n1,
        "incremental_revenue_ci": [end * n1 for end in per_cart_ci] if per_cart_ci else None,
    }
