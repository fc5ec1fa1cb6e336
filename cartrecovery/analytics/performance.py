"""One campaign's performance for a period: the message funnel per step (1-based) and
variant (sent → delivered → opened → clicked, held out apart) from ``fct_messages``, the
recoveries the ``last_touch`` model credits to each step and variant from
``fct_attribution``, and the campaign's holdout lift (:func:`..lift.lift`). Whole UTC days
of the period come from the day-grain marts ``fct_message_funnel`` and
``fct_attribution_daily``, its partial edge days from the detail marts (buckets.py).

Two queries once the warehouse is built: the campaign with every mart's build time, then
the steps, the lift sums and the reporting currency in one statement (each round trip and
each statement's planning counts on an endpoint answering in milliseconds); both are
prepared statements run with their generic plan, planned once per connection."""

from __future__ import annotations

from uuid import UUID

import psycopg
from psycopg import sql

from . import buckets, marts
from . import lift as lift_module
from .lift import lift
from .periods import Period

MARTS = ("fct_messages", "fct_message_funnel", "fct_attribution", "fct_attribution_daily")

# The detail rows of one partial edge day of the period (buckets.py): each edge is its own
# index range scan (an OR of both ranges would not use the time column of the index). A
# message counts at coalesce(sent_at, due_at): a sent_at range, or no sent_at and a due_at
# range, each a range of the (org_id, campaign_id, sent_at, due_at) index.
_EDGE1 = (sql.SQL("%(start)s"), sql.SQL("%(edge1_end)s"))
_EDGE2 = (sql.SQL("%(edge2_start)s"), sql.SQL("%(end)s"))


def _messages_edge(low: sql.SQL, high: sql.SQL) -> sql.Composed:
    return sql.SQL(
        """
        SELECT step_index, variant, channel,
               count(*) FILTER (WHERE is_sent) AS sent,
               count(*) FILTER (WHERE is_delivered) AS delivered,
               count(*) FILTER (WHERE is_opened) AS opened,
               count(*) FILTER (WHERE is_clicked) AS clicked,
               count(*) FILTER (WHERE is_held_out) AS held_out
        FROM (
          SELECT * FROM {messages}
          WHERE org_id = %(org)s AND campaign_id = %(campaign)s
            AND sent_at >= {low} AND sent_at < {high}
          UNION ALL
          SELECT * FROM {messages}
          WHERE org_id = %(org)s AND campaign_id = %(campaign)s
            AND sent_at IS NULL AND due_at >= {low} AND due_at < {high}
        ) m
        WHERE is_sent OR is_held_out
        GROUP BY step_index, variant, channel
        """
    ).format(messages=marts.table("fct_messages"), low=low, high=high)


def _attribution_edge(low: sql.SQL, high: sql.SQL) -> sql.Composed:
    return sql.SQL(
        """
        SELECT step_index, variant, currency, credit, revenue FROM {attribution}
        WHERE org_id = %(org)s AND campaign_id = %(campaign)s AND model = 'last_touch'
          AND credit > 0 AND ordered_at >= {low} AND ordered_at < {high}
        """
    ).format(attribution=marts.table("fct_attribution"), low=low, high=high)


# The funnel and last-touch recoveries per step and variant: the CTEs (``{cur}``: the
# reporting currency, a parameter or a subquery) and the select over them.
_STEPS_CTES = """

            funnel_parts AS (
              {messages_edge1}
              UNION ALL
              SELECT step_index, variant, channel, messages_sent, messages_delivered,
                     messages_opened, messages_clicked, messages_held_out
              FROM {funnel}
              WHERE org_id = %(org)s AND campaign_id = %(campaign)s
                AND period_start >= %(days_start)s AND period_start < %(days_end)s
              UNION ALL
              {messages_edge2}
            ),
            funnel AS (
              SELECT step_index, variant, min(channel) AS channel,
                     sum(sent)::bigint AS sent, sum(delivered)::bigint AS delivered,
                     sum(opened)::bigint AS opened, sum(clicked)::bigint AS clicked,
                     sum(held_out)::bigint AS held_out
              FROM funnel_parts
              GROUP BY step_index, variant
            ),
            credited_parts AS (
              {attribution_edge1}
              UNION ALL
              SELECT step_index, variant, currency, credit, revenue FROM {attribution_daily}
              WHERE org_id = %(org)s AND campaign_id = %(campaign)s AND model = 'last_touch'
                AND day_start >= %(days_start)s AND day_start < %(days_end)s
              UNION ALL
              {attribution_edge2}
            ),
            credited AS (
              SELECT step_index, variant, coalesce(currency, %(none)s) AS currency,
                     sum(credit) AS recoveries, sum(revenue) AS revenue,
                     bool_or(currency IS NOT DISTINCT FROM {cur}) AS is_reporting
              FROM credited_parts
              GROUP BY 1, 2, 3
            ),
            recovered AS (
              SELECT step_index, variant, sum(recoveries) AS recoveries,
                     coalesce(sum(revenue) FILTER (WHERE is_reporting), 0) AS recovered_revenue,
                     jsonb_object_agg(currency, revenue ORDER BY currency) AS revenue_by_currency
              FROM credited GROUP BY 1, 2
            )
"""
_STEPS_SELECT = """
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
"""


def _steps_parts(cur: sql.Composable) -> dict[str, sql.Composed]:
    formats = {
        "messages_edge1": _messages_edge(*_EDGE1),
        "messages_edge2": _messages_edge(*_EDGE2),
        "funnel": marts.table("fct_message_funnel"),
        "attribution_edge1": _attribution_edge(*_EDGE1),
        "attribution_edge2": _attribution_edge(*_EDGE2),
        "attribution_daily": marts.table("fct_attribution_daily"),
        "cur": cur,
    }
    return {
        "ctes": sql.SQL(_STEPS_CTES).format(**formats),
        "select": sql.SQL(_STEPS_SELECT).format(),
    }


# Everything in one statement once every mart is built: the reporting currency as the
# build flagged it (a row of its own, so it comes back even with no step and no lift row),
# the steps and the campaign's lift sums, told apart by ``part``. Columns one part lacks
# are NULL (typed by the other part), so each keeps its own types.
_ALL_IN_ONE = """
WITH reporting AS (
  SELECT nullif((SELECT currency FROM {orders}
                 WHERE org_id = %(org)s AND is_reporting_currency LIMIT 1), '') AS cur
),
{ctes},
steps AS ({select}),
lift_sums AS ({lift_sums})
SELECT 'step' AS part, step, variant, channel, sent, delivered, opened, clicked, held_out,
       recoveries, recovered_revenue, revenue_by_currency, NULL AS lift_group,
       NULL AS carts, NULL AS lift_recoveries, NULL AS revenue, NULL AS revenue_squares,
       NULL AS currency
FROM steps
UNION ALL
SELECT 'lift', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, lift_group,
       carts, recoveries, revenue, revenue_squares, currency
FROM lift_sums
UNION ALL
SELECT 'currency', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, cur
FROM reporting
ORDER BY part, step, variant
"""


_SESSION = (
    "SELECT set_config('plan_cache_mode', 'force_generic_plan', true),"
    " set_config('max_parallel_workers_per_gather', '0', true)"
)
_all_in_one_texts: dict[str, str] = {}


def _all_in_one(conn: psycopg.Connection) -> str:
    """The all-in-one statement for the marts' schema, composed once: a plain string also
    lets psycopg cache its conversion and prepare it by its text."""
    schema = marts.schema()  # what marts.table() names, read from the environment
    text = _all_in_one_texts.get(schema)
    if text is None:
        parts = _steps_parts(sql.SQL("(SELECT cur FROM reporting)"))
        text = (
            sql.SQL(_ALL_IN_ONE)
            .format(orders=marts.table("fct_orders"), lift_sums=lift_module.sums_query(), **parts)
            .as_string(conn)
        )
        _all_in_one_texts[schema] = text
    return text


def _text(stamp) -> str | None:
    return stamp.isoformat() if stamp else None


def campaign_performance(
    conn: psycopg.Connection, org_id: UUID | str, campaign_id: UUID, period: Period
) -> dict | None:
    """``{campaign_id, name, period, as_of, reporting_currency, steps: [{step, variant,
    channel, sent, delivered, opened, clicked, held_out, click_rate, recoveries,
    recovered_revenue, revenue_by_currency}], lift}``; messages count in the period by
    send (or due) time, recoveries by order time. None when the org has no such campaign."""
    # One query for the campaign and the build time of every mart the answer reads (its
    # own, the lift's, fct_orders for the reporting currency); the lift gets them passed.
    names = (*MARTS, lift_module.MART, lift_module.DAILY, "fct_orders")
    # Planning the answer's statement (a dozen index and day-grain scans) costs more than
    # running it: both statements are prepared once per connection and run with the generic
    # plan (their parameters only move range bounds within the same indexes), so the
    # server plans them once, not per request. Parallel workers cost more to start than the
    # few hundred rows each scan reads.
    conn.execute(_SESSION)
    campaign = conn.execute(
        sql.SQL(
            "SELECT name, {stamps} AS comments FROM app.campaigns"
            " WHERE org_id = %(org)s AND campaign_id = %(campaign)s"
        ).format(stamps=marts.STAMPS_SQL),
        {"org": org_id, "campaign": campaign_id, "schema": marts.schema(), "marts": list(names)},
        prepare=True,
    ).fetchone()
    if campaign is None:
        return None
    stamps = marts.parse_stamps(names, campaign["comments"])
    as_of = _text(marts.oldest(stamps, *MARTS))
    lift_as_of = _text(marts.oldest(stamps, lift_module.MART, lift_module.DAILY))
    params = {"org": org_id, "campaign": campaign_id, **buckets.split(period)}
    answer = {
        "campaign_id": str(campaign_id),
        "name": campaign["name"],
        "period": period.to_dict(),
        "as_of": as_of,
        "reporting_currency": None,
        "steps": [],
        "lift": None,
    }
    rows = None
    if as_of is not None and lift_as_of is not None and stamps["fct_orders"] is not None:
        found = conn.execute(
            _all_in_one(conn),
            {**params, "none": marts.NO_CURRENCY},
            prepare=True,
        ).fetchall()
        currency = next(r["currency"] for r in found if r["part"] == "currency")
        # No order flagged (none in the reporting currency yet): the currency comes from
        # the settings or every order (marts.reporting_currency), read below.
        if currency is not None:
            rows = [r for r in found if r["part"] == "step"]
            lift_rows = [
                {**r, "recoveries": r["lift_recoveries"]} for r in found if r["part"] == "lift"
            ]
            answer["lift"] = lift_module.answer(
                period, lift_as_of, campaign_id, currency, lift_rows
            )
    if rows is None:
        currency = marts.reporting_currency(conn, org_id, stamps["fct_orders"] is not None)
        answer["lift"] = lift(
            conn,
            org_id,
            period,
            campaign_id,
            known={"as_of": lift_as_of, "reporting_currency": currency},
        )
        if as_of is not None:
            parts = _steps_parts(sql.SQL("%(cur)s"))
            rows = conn.execute(
                sql.SQL("WITH {ctes} {select} ORDER BY step, variant").format(**parts),
                {**params, "cur": currency, "none": marts.NO_CURRENCY},
            ).fetchall()
    answer["reporting_currency"] = currency
    if as_of is None:
        return answer
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
