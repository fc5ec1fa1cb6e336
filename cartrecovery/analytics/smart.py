"""What smart send time and smart discount changed, per campaign step, against the control
share that keeps the fixed behaviour (docs/analytics.md, "Smart send time and smart
discount"; delivery/smart.py decides and records the arm on each message).

Each message of a step that turns a feature on carries its arm in ``fct_messages``
(``send_time_arm``, ``discount_arm``): ``control`` (a deterministic share of carts keeps the
step's fixed delay or full discount) or ``model``, ``explore`` or ``fallback`` (the model was
asked). The comparison is by intention to treat: every message not in control is in the
**smart** arm, fallbacks included, because only the control split is random; the smart arm's
``decisions`` say how many the model actually decided.

A message counts in the period when its cart was abandoned in it (both arms are assigned at
abandonment, so a later smart send time cannot move a message out of the period). Its
**recovery** is the cart's conversion as in lift: an order of the cart or its customer within
the longest window after abandonment, touched or not (``fct_journeys`` outcome ``recovered``
or ``converted``), so a recovery the smart arm prevented or caused counts whether or not a
message was clicked. Below :data:`MIN_PER_ARM` messages in either arm the comparison is
``not_meaningful`` and every estimate is null.
"""

from __future__ import annotations

from uuid import UUID

import psycopg
from psycopg import sql

from cartrecovery import stats

from . import marts
from .periods import Period

MARTS = ("fct_messages", "fct_journeys", "fct_discount_redemptions")
FEATURES = ("send_time", "discount")
ARMS = ("smart", "control")
MIN_PER_ARM = 30
CONFIDENCE = 0.95
_SETTINGS = stats.CompareSettings(
    engine="frequentist", difference_type="absolute", alpha=1 - CONFIDENCE
)
_ESTIMATES = (
    "recovery_rate_difference",
    "recovery_rate_difference_ci",
    "revenue_per_message_difference",
    "revenue_per_message_difference_ci",
)


def smart(
    conn: psycopg.Connection,
    org_id: UUID | str,
    period: Period,
    campaign_id: UUID | None = None,
) -> dict | None:
    """``{period, as_of, campaign_id, reporting_currency, min_per_arm, steps: [{campaign_id,
    campaign_name, step, feature, status, reason, smart, control, recovery_rate_difference(+_ci),
    revenue_per_message_difference(+_ci)}]}``, steps by campaign name, step, feature. An arm
    is ``{messages, sent, clicks, click_rate, recoveries, recovery_rate, revenue_by_currency,
    revenue, decisions, discounts_offered, discounts_redeemed, discount_cost_by_currency,
    discount_cost_unknown}`` (the discount fields null for ``send_time``). Differences are
    smart minus control; revenue in the reporting currency. None when ``campaign_id`` is not
    one of the org's campaigns."""
    names = {
        r["campaign_id"]: r["name"]
        for r in conn.execute(
            "SELECT campaign_id, name FROM app.campaigns WHERE org_id = %s"
            " AND (%s::uuid IS NULL OR campaign_id = %s::uuid)",
            (org_id, campaign_id, campaign_id),
        ).fetchall()
    }
    if campaign_id is not None and campaign_id not in names:
        return None
    as_of, currency = marts.as_of_and_currency(conn, org_id, *MARTS)
    answer = {
        "period": period.to_dict(),
        "as_of": as_of,
        "campaign_id": str(campaign_id) if campaign_id else None,
        "reporting_currency": currency,
        "min_per_arm": MIN_PER_ARM,
        "steps": [],
    }
    if as_of is None:
        return answer
    rows = conn.execute(
        sql.SQL(
            """
            WITH arms AS (
              SELECT m.campaign_id, m.step_index, f.feature, f.decision, m.message_id,
                     m.cart_id, m.is_sent, m.is_clicked, m.is_discount_offered,
                     CASE WHEN f.decision = 'control' THEN 'control' ELSE 'smart' END AS arm
              FROM {messages} m
              CROSS JOIN LATERAL (
                VALUES ('send_time', m.send_time_arm), ('discount', m.discount_arm)
              ) AS f (feature, decision)
              WHERE m.org_id = %(org)s AND f.decision IS NOT NULL
                AND (%(campaign)s::uuid IS NULL OR m.campaign_id = %(campaign)s::uuid)
            ),
            measured AS (
              SELECT a.*, j.outcome IN ('recovered', 'converted') AS is_recovered,
                     j.currency AS order_currency, j.revenue AS order_total,
                     d.discount_cost, d.currency AS cost_currency, d.is_cost_known,
                     d.coupon_id IS NOT NULL AS is_redeemed
              FROM arms a
              JOIN {journeys} j ON j.org_id = %(org)s AND j.cart_id = a.cart_id
              LEFT JOIN {redemptions} d ON d.org_id = %(org)s AND d.message_id = a.message_id
              WHERE j.abandoned_at >= %(start)s AND j.abandoned_at < %(end)s
            ),
            base AS (
              SELECT campaign_id, step_index, feature, arm,
                     count(*) AS messages,
                     count(*) FILTER (WHERE is_sent) AS sent,
                     count(*) FILTER (WHERE is_clicked) AS clicks,
                     count(*) FILTER (WHERE is_recovered) AS recoveries,
                     count(*) FILTER (WHERE decision = 'model') AS model,
                     count(*) FILTER (WHERE decision = 'explore') AS explore,
                     count(*) FILTER (WHERE decision = 'fallback') AS fallback,
                     count(*) FILTER (WHERE decision = 'control') AS control,
                     -- The code goes with every sent message unless the model withheld it.
                     count(*) FILTER (
                       WHERE is_sent AND (decision <> 'model' OR is_discount_offered)
                     ) AS discounts_offered,
                     count(*) FILTER (WHERE is_redeemed) AS discounts_redeemed,
                     count(*) FILTER (WHERE is_redeemed AND NOT is_cost_known)
                       AS discount_cost_unknown,
                     coalesce(sum(order_total) FILTER (
                       WHERE is_recovered AND order_currency IS NOT DISTINCT FROM %(cur)s), 0)
                       AS revenue,
                     coalesce(sum(order_total * order_total) FILTER (
                       WHERE is_recovered AND order_currency IS NOT DISTINCT FROM %(cur)s), 0)
                       AS revenue_squares
              FROM measured GROUP BY 1, 2, 3, 4
            ),
            revenue AS (
              SELECT campaign_id, step_index, feature, arm,
                     jsonb_object_agg(currency, amount) AS revenue_by_currency
              FROM (
                SELECT campaign_id, step_index, feature, arm,
                       coalesce(order_currency, %(none)s) AS currency, sum(order_total) AS amount
                FROM measured WHERE is_recovered AND order_total IS NOT NULL
                GROUP BY 1, 2, 3, 4, 5
              ) t GROUP BY 1, 2, 3, 4
            ),
            cost AS (
              SELECT campaign_id, step_index, feature, arm,
                     jsonb_object_agg(currency, amount) AS discount_cost_by_currency
              FROM (
                SELECT campaign_id, step_index, feature, arm,
                       coalesce(cost_currency, %(none)s) AS currency, sum(discount_cost) AS amount
                FROM measured WHERE is_redeemed AND is_cost_known
                GROUP BY 1, 2, 3, 4, 5
              ) t GROUP BY 1, 2, 3, 4
            )
            SELECT * FROM base
            LEFT JOIN revenue USING (campaign_id, step_index, feature, arm)
            LEFT JOIN cost USING (campaign_id, step_index, feature, arm)
            """
        ).format(
            messages=marts.table("fct_messages"),
            journeys=marts.table("fct_journeys"),
            redemptions=marts.table("fct_discount_redemptions"),
        ),
        {
            "org": org_id,
            "campaign": campaign_id,
            "start": period.start,
            "end": period.end,
            "cur": currency,
            "none": marts.NO_CURRENCY,
        },
    ).fetchall()
    found: dict[tuple, dict] = {}
    for row in rows:
        key = (row["campaign_id"], row["step_index"], row["feature"])
        found.setdefault(key, {})[row["arm"]] = row
    for (cid, step, feature), arms in sorted(
        found.items(), key=lambda kv: (names.get(kv[0][0], ""), str(kv[0][0]), *kv[0][1:])
    ):
        answer["steps"].append(_step(cid, names.get(cid), step, feature, arms))
    return answer


def _arm(row: dict | None, feature: str) -> dict:
    if row is None:
        arm = {
            "messages": 0,
            "sent": 0,
            "clicks": 0,
            "click_rate": None,
            "recoveries": 0,
            "recovery_rate": None,
            "revenue_by_currency": {},
            "revenue": 0.0,
            "decisions": {},
        }
        discount = {"discounts_offered": 0, "discounts_redeemed": 0}
        discount |= {"discount_cost_by_currency": {}, "discount_cost_unknown": 0}
    else:
        arm = {
            "messages": row["messages"],
            "sent": row["sent"],
            "clicks": row["clicks"],
            "click_rate": row["clicks"] / row["sent"] if row["sent"] else None,
            "recoveries": row["recoveries"],
            "recovery_rate": row["recoveries"] / row["messages"],
            "revenue_by_currency": marts.by_currency(row["revenue_by_currency"]),
            "revenue": float(row["revenue"]),
            "decisions": {d: row[d] for d in ("model", "explore", "fallback", "control") if row[d]},
        }
        discount = {
            "discounts_offered": row["discounts_offered"],
            "discounts_redeemed": row["discounts_redeemed"],
            "discount_cost_by_currency": marts.by_currency(row["discount_cost_by_currency"]),
            "discount_cost_unknown": row["discount_cost_unknown"],
        }
    if feature != "discount":
        discount = dict.fromkeys(discount)
    return arm | discount


def _step(campaign_id, name: str | None, step: int, feature: str, rows: dict) -> dict:
    smart_row, control_row = rows.get("smart"), rows.get("control")
    entry = {
        "campaign_id": str(campaign_id),
        "campaign_name": name,
        "step": step,
        "feature": feature,
        "smart": _arm(smart_row, feature),
        "control": _arm(control_row, feature),
        **dict.fromkeys(_ESTIMATES),
    }
    n_smart, n_control = entry["smart"]["messages"], entry["control"]["messages"]
    if min(n_smart, n_control) < MIN_PER_ARM:
        return {
            **entry,
            "status": "not_meaningful",
            "reason": f"{n_smart} smart and {n_control} control messages; the comparison is "
            f"not yet meaningful below {MIN_PER_ARM} in each arm",
        }
    rate = stats.compare(
        "proportion",
        stats.ArmStats(n_control, control_row["recoveries"]),
        stats.ArmStats(n_smart, smart_row["recoveries"]),
        _SETTINGS,
    )
    revenue = stats.compare(
        "mean",
        stats.ArmStats(
            n_control, float(control_row["revenue"]), float(control_row["revenue_squares"])
        ),
        stats.ArmStats(n_smart, float(smart_row["revenue"]), float(smart_row["revenue_squares"])),
        _SETTINGS,
    )
    per_message = float(smart_row["revenue"]) / n_smart - float(control_row["revenue"]) / n_control
    return {
        **entry,
        "status": "ok",
        "reason": None,
        "recovery_rate_difference": (smart_row["recoveries"] / n_smart)
        - (control_row["recoveries"] / n_control),
        # An arm without variance (no recovery at all, or all) has no interval: null.
        "recovery_rate_difference_ci": None if rate.error else [rate.ci[0], rate.ci[1]],
        "revenue_per_message_difference": per_message,
        "revenue_per_message_difference_ci": None
        if revenue.error
        else [revenue.ci[0], revenue.ci[1]],
    }
