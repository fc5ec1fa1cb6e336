"""What ``GET /api/v1/experiments/{id}/results`` shows: per variant and metric the sufficient
statistics, the org's engine's verdict (``stats.analyze_experiment``), SRM, corrections and
the plain-words decision.

The counts come from the operational tables (``app.outbox``, ``app.message_events``,
``app.orders``, ``app.coupons``), not from the warehouse marts: marketers watch a running
test live, and the marts are only as fresh as the last warehouse build. The definitions are
those of the mart ``fct_experiment_counts`` (docs/statistics.md, "Experiment results"), so
both give the same numbers after a build:

- a unit of a step experiment is a message of that step that was sent (its exposure: the
  variant actually sent); of a holdout experiment, a cart of the campaign that was held out
  or got at least one message;
- converted: the first order of the cart, or of its customer (email, else customer id),
  within the org's longest attribution window after the abandonment, touched or not;
- revenue: that order's total when it is in the reporting currency, else 0 (the other
  currencies are listed per currency, never added);
- clicked: a tracked click on the message (not on its unsubscribe link); guardrails:
  unsubscribed, spam complaint, bounced (bounce, dropped, undelivered, failed), and the
  discount cost of a redeemed code in the reporting currency.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from uuid import UUID

import psycopg

from . import bandits, org_settings, stats
from .assignment import ExperimentId, configured_weights, holdout_share, step_variants

STEP_METRICS = (
    stats.MetricSpec("recovery_rate", "proportion"),
    stats.MetricSpec("revenue_per_recipient", "mean"),
    stats.MetricSpec("click_rate", "proportion"),
    stats.MetricSpec("unsubscribe_rate", "proportion", role="guardrail"),
    stats.MetricSpec("spam_complaint_rate", "proportion", role="guardrail"),
    stats.MetricSpec("bounce_rate", "proportion", role="guardrail"),
    stats.MetricSpec("discount_cost", "mean", role="guardrail"),
)
HOLDOUT_METRICS = (
    stats.MetricSpec("recovery_rate", "proportion"),
    stats.MetricSpec("revenue_per_recipient", "mean"),
)
# metric key → (column of the count query holding the sum, and its sum of squares)
COLUMNS = {
    "recovery_rate": ("converted", None),
    "revenue_per_recipient": ("revenue", "revenue_squares"),
    "click_rate": ("clicked", None),
    "unsubscribe_rate": ("unsubscribed", None),
    "spam_complaint_rate": ("complained", None),
    "bounce_rate": ("bounced", None),
    "discount_cost": ("discount", "discount_squares"),
}

METHODS = {
    "sequential": "Sequential test (asymptotic confidence sequences, N* = {n:g}): its "
    "p-values and intervals stay valid however often the results are looked at.",
    "frequentist": "Fixed-horizon Welch t-test: valid when read once, at the planned sample "
    "size; looking repeatedly inflates false winners.",
    "bayesian": "Bayesian normal model with a flat prior: chance to beat control, credible "
    "interval and risk; a variant ships at a 95% chance to win.",
}

# The multiple-comparison corrections ``correction`` may name, in words.
CORRECTIONS = {"holm": "Holm–Bonferroni", "bh": "Benjamini–Hochberg"}


class ExperimentNotFound(LookupError):
    """No such campaign, or the campaign step (or holdout) is not an experiment."""


def longest_window_seconds(settings: dict) -> int:
    """The org's longest attribution window: conversions are counted within it (as the
    warehouse's ``int_org_attribution_settings`` does)."""
    windows = {
        **org_settings.DEFAULTS["attribution_windows_seconds"],
        **(settings.get("attribution_windows_seconds") or {}),
    }
    return max([int(settings["attribution_window_seconds"]), *map(int, windows.values())])


# The cart's customer, as the warehouse's customer_key macro writes it.
_CART_CUSTOMER = (
    "coalesce('email:' || nullif(lower(c.email), ''), 'customer:' || c.customer_id::text, "
    "'phone:' || nullif(c.phone, ''))"
)

# The count queries are set-based: a few scans and hash joins, so their cost grows with the
# org's rows, not with per-unit index probes (measured at 1,000,000 carts in
# docs/BENCHMARKS.md, "Dashboard"). Every per-unit observation is 0 for most units, so each
# metric is summed per arm where it is non-zero (a unit's first order, its callbacks, its
# coupon) and the arms' sums are joined at the end, instead of joining every unit to each.

# The first order of each unit's cart or customer within the window: two equi-joins (hash
# joins over the org's orders) rather than one join on an OR, as the warehouse does.
_FIRST_ORDERS = """
org_orders AS MATERIALIZED (
  SELECT r.order_id, r.cart_id, r.total_price, upper(r.currency) AS currency, r.ordered_at,
         coalesce('email:' || nullif(lower(r.email), ''),
                  'customer:' || r.customer_id::text) AS customer_key
  FROM app.orders r WHERE r.org_id = %(org)s
),
matches AS (
  SELECT u.unit_id, u.arm, r.order_id, r.total_price, r.currency, r.ordered_at
  FROM units u JOIN org_orders r ON r.cart_id = u.cart_id
  WHERE r.ordered_at >= u.abandoned_at
    AND r.ordered_at <= u.abandoned_at + make_interval(secs => %(window)s)
  UNION ALL
  SELECT u.unit_id, u.arm, r.order_id, r.total_price, r.currency, r.ordered_at
  FROM units u JOIN org_orders r ON r.customer_key = u.customer_key
  WHERE r.ordered_at >= u.abandoned_at
    AND r.ordered_at <= u.abandoned_at + make_interval(secs => %(window)s)
),
first_orders AS (
  SELECT DISTINCT ON (unit_id) unit_id, arm, order_id, total_price, currency
  FROM matches
  ORDER BY unit_id, ordered_at, order_id
),
-- per arm, and per arm and order currency: converted units and their orders' revenue
converted AS (
  SELECT arm, currency, grouping(currency) = 1 AS whole_arm,
         count(*) AS converted,
         sum(CASE WHEN currency = %(currency)s THEN total_price ELSE 0 END) AS revenue,
         sum(CASE WHEN currency = %(currency)s THEN total_price * total_price ELSE 0 END)
           AS revenue_squares,
         sum(total_price) AS currency_revenue
  FROM first_orders
  GROUP BY GROUPING SETS ((arm), (arm, currency))
),
arms AS (SELECT arm, count(*) AS n FROM units GROUP BY arm)
"""

_STEP_UNITS = f"""
WITH units AS MATERIALIZED (
  SELECT o.message_id AS unit_id, o.cart_id, o.created_at,
         coalesce(o.variant, 'default') AS arm, c.abandoned_at,
         {_CART_CUSTOMER} AS customer_key
  FROM app.outbox o
  JOIN app.carts c ON c.org_id = o.org_id AND c.cart_id = o.cart_id
  WHERE o.org_id = %(org)s AND o.campaign_id = %(campaign)s AND o.step_index = %(step)s
    AND o.status = 'sent'
)
"""

_STEP_CTES = f"""
{_STEP_UNITS},
{_FIRST_ORDERS},
-- the callbacks of the org's messages, aggregated once per message (one hash aggregate over
-- them costs less than first picking the units' callbacks out)
callbacks AS (
  SELECT e.message_id, e.cart_id,
         bool_or(e.event_type = 'click'
                 AND NOT coalesce(e.url ~ '^https?://[^/]+/u/', false)) AS clicked,
         bool_or(e.event_type IN ('unsubscribe', 'group_unsubscribe')) AS unsubscribed,
         bool_or(e.event_type = 'spamreport') AS complained,
         bool_or(e.event_type IN ('bounce', 'dropped', 'undelivered', 'failed')) AS bounced,
         bool_or(e.event_type = 'delivered') AS delivered,
         bool_or(e.event_type = 'open') AS opened
  FROM app.message_events e
  WHERE e.org_id = %(org)s
  GROUP BY e.message_id, e.cart_id
),
flags AS (
  SELECT u.arm,
         count(*) FILTER (WHERE clicked) AS clicked,
         count(*) FILTER (WHERE unsubscribed) AS unsubscribed,
         count(*) FILTER (WHERE complained) AS complained,
         count(*) FILTER (WHERE bounced) AS bounced,
         count(*) FILTER (WHERE delivered) AS delivered,
         count(*) FILTER (WHERE opened) AS opened
  FROM callbacks cb JOIN units u ON u.unit_id = cb.message_id AND u.cart_id = cb.cart_id
  GROUP BY u.arm
),
-- the cost of each unit's redeemed coupon in the reporting currency
discounts AS (
  SELECT u.arm, sum(d.discount) AS discount, sum(d.discount * d.discount) AS discount_squares
  FROM (
    SELECT k.message_id,
           CASE
             WHEN upper(r.currency) IS DISTINCT FROM %(currency)s THEN 0
             WHEN k.type = 'fixed_amount' THEN k.value
             -- the order total is after the discount: v percent of the price before it
             WHEN k.type = 'percentage' AND k.value < 100
               THEN r.total_price * k.value / (100 - k.value)
             ELSE 0
           END AS discount
    FROM app.coupons k
    JOIN app.orders r ON r.org_id = k.org_id AND r.order_id = k.order_id
    WHERE k.org_id = %(org)s AND k.message_id IS NOT NULL
  ) d
  JOIN units u ON u.unit_id = d.message_id
  GROUP BY u.arm
)
"""

# ``{enrolled}``: the Thompson query's extra column (below), or nothing
_STEP_SELECT = """
SELECT a.arm, c.currency, c.whole_arm, a.n,
       coalesce(c.converted, 0) AS converted,
       coalesce(c.revenue, 0) AS revenue,
       coalesce(c.revenue_squares, 0) AS revenue_squares,
       coalesce(f.clicked, 0) AS clicked,
       coalesce(f.unsubscribed, 0) AS unsubscribed,
       coalesce(f.complained, 0) AS complained,
       coalesce(f.bounced, 0) AS bounced,
       coalesce(f.delivered, 0) AS delivered,
       coalesce(f.opened, 0) AS opened,
       coalesce(d.discount, 0) AS discount,
       coalesce(d.discount_squares, 0) AS discount_squares,
       c.currency_revenue{enrolled}
FROM arms a
LEFT JOIN converted c ON c.arm = a.arm
LEFT JOIN flags f ON f.arm = a.arm
LEFT JOIN discounts d ON d.arm = a.arm
"""

_STEP_COUNTS = _STEP_CTES + _STEP_SELECT.format(enrolled="")

# A Thompson step's counts also tally its units by the shares in force when each was sent
# (for :func:`_expected_shares`) from the same units, rather than building them again in a
# query of their own: one list of [shares, units] pairs, repeated on every row.
_THOMPSON_COUNTS = (
    _STEP_CTES
    + """,
enrolled AS (
  SELECT a.shares, count(*) AS units
  FROM units m
  LEFT JOIN LATERAL (
    SELECT b.shares FROM app.bandit_allocations b
    WHERE b.org_id = %(org)s AND b.campaign_id = %(campaign)s
      AND b.step_index = %(step)s AND b.allocated_at <= m.created_at
    ORDER BY b.allocated_at DESC LIMIT 1
  ) a ON true
  GROUP BY a.shares
)
"""
    + _STEP_SELECT.format(
        enrolled=",\n       (SELECT jsonb_agg(jsonb_build_array(e.shares, e.units))"
        " FROM enrolled e) AS enrolled"
    )
)

_HOLDOUT_COUNTS = f"""
WITH groups AS (
  SELECT o.cart_id,
         CASE WHEN bool_or(o.status = 'held_out') THEN 'holdout' ELSE 'messaged' END AS arm
  FROM app.outbox o
  WHERE o.org_id = %(org)s AND o.campaign_id = %(campaign)s
    AND o.status IN ('sent', 'held_out')
  GROUP BY o.cart_id
),
units AS MATERIALIZED (
  SELECT g.cart_id AS unit_id, g.cart_id, g.arm, c.abandoned_at,
         {_CART_CUSTOMER} AS customer_key
  FROM groups g JOIN app.carts c ON c.org_id = %(org)s AND c.cart_id = g.cart_id
),
{_FIRST_ORDERS}
SELECT a.arm, c.currency, c.whole_arm, a.n,
       coalesce(c.converted, 0) AS converted,
       coalesce(c.revenue, 0) AS revenue,
       coalesce(c.revenue_squares, 0) AS revenue_squares,
       c.currency_revenue
FROM arms a
LEFT JOIN converted c ON c.arm = a.arm
"""


def _number(value) -> float:
    return float(value) if isinstance(value, Decimal) else float(value or 0)


def _load_campaign(conn: psycopg.Connection, org_id, campaign_id: UUID) -> dict:
    campaign = conn.execute(
        "SELECT campaign_id, name, sequence_steps, experiment FROM app.campaigns "
        "WHERE org_id = %s AND campaign_id = %s",
        (org_id, campaign_id),
    ).fetchone()
    if campaign is None:
        raise ExperimentNotFound("campaign not found")
    return campaign


def _expected_shares(enrolled: list | None, names: list[str], fixed: list[float]) -> list[float]:
    """A Thompson step's expected split: per sent message, the share in force when its cart
    was enrolled (the configured weights before the first allocation), summed. SRM is
    judged against this, not against the initial weights. ``enrolled``: the
    ``[shares, units]`` pairs of :data:`_THOMPSON_COUNTS`."""
    total_fixed = sum(fixed) or 1.0
    expected = [0.0] * len(names)
    for shares, units in enrolled or []:
        shares = shares or {}
        for i, name in enumerate(names):
            share = shares.get(name) if shares else fixed[i] / total_fixed
            expected[i] += units * float(share or 0)
    return expected if sum(expected) > 0 else fixed


def experiment_results(
    conn: psycopg.Connection,
    org_id,
    experiment: ExperimentId,
    *,
    correction: str = "holm",
    difference_type: str = "relative",
    practical_effect: float | None = None,
) -> dict:
    """The result view of one experiment; ExperimentNotFound when there is none."""
    return experiment_view(
        conn,
        org_id,
        experiment,
        correction=correction,
        difference_type=difference_type,
        practical_effect=practical_effect,
    )[0]


# Planner settings for the count queries, for their statement only (restored after):
# - jit: their estimated cost passes jit_above_cost, and compiling costs more than running
#   them (seconds of compilation seen for sub-second queries);
# - work_mem: their hashes hold every unit of the experiment; with the default 4 MB they
#   spill to disk in batches; with 64 MB only the callbacks' aggregate spills a little at a
#   million carts;
# - enable_mergejoin: the units are a CTE without statistics, so the planner over-estimates
#   the order matches ~2,000-fold and picks sort-merge joins that sort every unit by text
#   keys; the hash joins it otherwise takes cost 10-20% less backend CPU (measured with
#   bench/dashboard.py's data at 300,000 and 1,000,000 carts).
_COUNT_SETTINGS = {"jit": "off", "work_mem": "64MB", "enable_mergejoin": "off"}


_READ_SETTINGS = "SELECT " + ", ".join(f"current_setting('{n}') AS {n}" for n in _COUNT_SETTINGS)


def _set_local(conn: psycopg.Connection, values: dict) -> None:
    """``values`` (setting → value) for the rest of the transaction, in one statement."""
    conn.execute(
        "SELECT " + ", ".join(["set_config(%s, %s, true)"] * len(values)),
        [x for item in values.items() for x in item],
    )


@contextmanager
def _count_settings(conn: psycopg.Connection) -> Iterator[None]:
    previous = conn.execute(_READ_SETTINGS).fetchone()
    _set_local(conn, _COUNT_SETTINGS)
    yield
    # Not in a ``finally``: when a statement failed, the transaction is aborted, a restore
    # would fail and hide its error, and the rollback reverts the settings anyway
    # (set_config(..., true) is SET LOCAL).
    _set_local(conn, previous)


def experiment_view(
    conn: psycopg.Connection,
    org_id,
    experiment: ExperimentId,
    *,
    correction: str = "holm",
    difference_type: str = "relative",
    practical_effect: float | None = None,
) -> tuple[dict, list[dict]]:
    """The result view of one experiment (:func:`experiment_results`) and its funnel per
    variant, from one pass over its units: sent (the units), delivered and opened (a
    ``delivered``/``open`` callback, as ``fct_messages`` counts them), clicked and recovered
    (the view's own counts). A holdout experiment's units are carts: only ``units`` and
    ``recovered`` apply. ExperimentNotFound when there is none."""
    return analyze(
        experiment_counts(conn, org_id, experiment),
        correction=correction,
        difference_type=difference_type,
        practical_effect=practical_effect,
    )


def experiment_counts(conn: psycopg.Connection, org_id, experiment: ExperimentId) -> dict:
    """What :func:`experiment_view` reads from the database for one experiment: its counts
    per arm and all else the analysis needs, whatever the analysis options (so a caller may
    keep them and :func:`analyze` them under other options). Plain data (picklable).
    ExperimentNotFound when there is none."""
    campaign = _load_campaign(conn, org_id, experiment.campaign_id)
    settings = org_settings.get_settings(conn, org_id)
    engine = settings.get("experiment_engine") or "sequential"
    currency = org_settings.reporting_currency(conn, org_id)
    params = {
        "org": org_id,
        "campaign": experiment.campaign_id,
        "step": experiment.step_index,
        "window": longest_window_seconds(settings),
        "currency": currency,
    }
    allocation = None
    history: list[dict] = []
    if experiment.step_index is None:
        share = holdout_share(campaign)
        if share <= 0:
            raise ExperimentNotFound("this campaign has no holdout group")
        names, weights = ["holdout", "messaged"], [share, 1 - share]
        units_sql = _HOLDOUT_COUNTS
    else:
        steps = campaign["sequence_steps"] if isinstance(campaign["sequence_steps"], list) else []
        if experiment.step_index >= len(steps) or not isinstance(
            steps[experiment.step_index], dict
        ):
            raise ExperimentNotFound("the campaign has no such step")
        step = steps[experiment.step_index]
        variants = step_variants(step)
        if len(variants) < 2:
            raise ExperimentNotFound("this step has fewer than two variants")
        names = [v["name"] for v in variants]
        weights = configured_weights(variants)
        units_sql = _STEP_COUNTS
        allocation = step.get("allocation") or "fixed"
        if allocation == "thompson":
            units_sql = _THOMPSON_COUNTS
            history = [
                {**row, "allocated_at": row["allocated_at"].isoformat()}
                for row in bandits.history(
                    conn, org_id, experiment.campaign_id, experiment.step_index
                )
            ]

    counts = {}
    by_currency: dict[str, dict[str, str]] = defaultdict(dict)
    with _count_settings(conn):
        rows = conn.execute(units_sql, params).fetchall()
    if allocation == "thompson":
        weights = _expected_shares(rows[0]["enrolled"] if rows else None, names, weights)
    for r in rows:
        # An arm without a converted unit has one row, with no currency grouping.
        if r["whole_arm"] or r["whole_arm"] is None:
            counts[r["arm"]] = r
        elif r["currency"] is not None:
            by_currency[r["arm"]][r["currency"]] = str(r["currency_revenue"])
    return {
        "experiment_id": str(experiment),
        "campaign_id": str(experiment.campaign_id),
        "campaign_name": campaign["name"],
        "kind": experiment.kind,
        "step": None if experiment.step_index is None else experiment.step_index + 1,
        "allocation": allocation,
        "allocation_history": history,
        "engine": engine,
        "reporting_currency": currency,
        "names": names,
        "weights": [float(w) for w in weights],
        "counts": counts,
        "revenue_by_currency": dict(by_currency),
    }


def analyze(
    counted: dict,
    *,
    correction: str = "holm",
    difference_type: str = "relative",
    practical_effect: float | None = None,
) -> tuple[dict, list[dict]]:
    """:func:`experiment_view` from an experiment's :func:`experiment_counts` under these
    analysis options (no database)."""
    engine, counts = counted["engine"], counted["counts"]
    metrics = STEP_METRICS if counted["kind"] == "step" else HOLDOUT_METRICS
    variations = []
    for name, weight in zip(counted["names"], counted["weights"], strict=True):
        row = counts.get(name) or {}
        n = int(row.get("n") or 0)
        arm_metrics = {}
        for spec in metrics:
            total, squares = COLUMNS[spec.key]
            arm_metrics[spec.key] = stats.ArmStats(
                n,
                _number(row.get(total)),
                _number(row.get(squares)) if squares else None,
            )
        variations.append(stats.Variation(name, float(weight), n, arm_metrics))

    compare = stats.CompareSettings(engine=engine, difference_type=difference_type)
    used_correction = None if engine == "bayesian" else correction
    analysis = stats.analyze_experiment(
        variations,
        metrics,
        compare,
        correction=used_correction,
        practical_effect=practical_effect,
    )
    method = METHODS[engine].format(n=compare.sequential_tuning_parameter)
    if used_correction:
        method += (
            " P-values are corrected over variants × goal metrics ("
            + CORRECTIONS[used_correction]
            + ")."
        )
    body = analysis.to_dict()
    results = {
        "experiment_id": counted["experiment_id"],
        "campaign_id": counted["campaign_id"],
        "campaign_name": counted["campaign_name"],
        "kind": counted["kind"],
        "step": counted["step"],
        "allocation": counted["allocation"],
        "method": method,
        "difference_type": difference_type,
        "reporting_currency": counted["reporting_currency"],
        "control": counted["names"][0],
        "variations": [
            {
                "name": v.name,
                "weight": v.weight,
                "units": v.units,
                "metrics": {
                    key: {
                        "n": s.n,
                        "sum": s.sum,
                        **({"sum_squares": s.sum_squares} if s.sum_squares is not None else {}),
                    }
                    for key, s in v.metrics.items()
                },
                "revenue_by_currency": counted["revenue_by_currency"].get(v.name, {}),
            }
            for v in variations
        ],
        "metrics": [
            {"key": m.key, "type": m.metric, "role": m.role, "inverse": m.role == "guardrail"}
            for m in metrics
        ],
        "allocation_history": counted["allocation_history"],
        **body,
    }
    return results, _funnel(results, counts)


# --- what the dashboard's Experiments page adds (docs/dashboard.md, "Experiments") ----------


def list_experiments(conn: psycopg.Connection, org_id) -> list[dict]:
    """The org's experiments that have data: each campaign step with two or more variants
    and at least one sent message, each campaign with a holdout share and at least one
    sent or held-out message. ``[{experiment_id, campaign_id, campaign_name, kind, step,
    label}]``, newest campaign first, steps in order, the holdout last."""
    found = []
    campaigns = conn.execute(
        "SELECT campaign_id, name, sequence_steps, experiment FROM app.campaigns "
        "WHERE org_id = %s ORDER BY created_at DESC, campaign_id",
        (org_id,),
    ).fetchall()
    for campaign in campaigns:
        steps = campaign["sequence_steps"] if isinstance(campaign["sequence_steps"], list) else []
        candidates = [
            ExperimentId(campaign["campaign_id"], i)
            for i, step in enumerate(steps)
            if isinstance(step, dict) and len(step_variants(step)) >= 2
        ]
        if holdout_share(campaign) > 0:
            candidates.append(ExperimentId(campaign["campaign_id"], None))
        for experiment in candidates:
            # An index range (outbox_campaign_step), stopping at the first row.
            has_data = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM app.outbox WHERE org_id = %(org)s "
                "AND campaign_id = %(campaign)s "
                "AND (%(step)s::int IS NULL OR step_index = %(step)s) "
                "AND status = ANY(%(statuses)s))",
                {
                    "org": org_id,
                    "campaign": experiment.campaign_id,
                    "step": experiment.step_index,
                    "statuses": ["sent"]
                    if experiment.step_index is not None
                    else ["sent", "held_out"],
                },
            ).fetchone()["exists"]
            if not has_data:
                continue
            where = (
                "holdout" if experiment.step_index is None else f"step {experiment.step_index + 1}"
            )
            found.append(
                {
                    "experiment_id": str(experiment),
                    "campaign_id": str(experiment.campaign_id),
                    "campaign_name": campaign["name"],
                    "kind": experiment.kind,
                    "step": None if experiment.step_index is None else experiment.step_index + 1,
                    "label": f"{campaign['name']} · {where}",
                }
            )
    return found


def _funnel(results: dict, counts: dict[str, dict]) -> list[dict]:
    """Per variant of a result view its funnel (:func:`experiment_view`); ``counts`` are the
    count query's rows per arm."""
    rows = []
    for v in results["variations"]:
        metrics = v["metrics"]
        row = {"variant": v["name"], "units": v["units"]}
        if results["kind"] == "step":
            seen = counts.get(v["name"]) or {}
            row.update(
                sent=v["units"],
                delivered=int(seen.get("delivered") or 0),
                opened=int(seen.get("opened") or 0),
                clicked=int(metrics["click_rate"]["sum"]),
            )
        row["recovered"] = int(metrics["recovery_rate"]["sum"])
        rows.append(row)
    return rows


def _status(engine: str, comparison: dict, units: int, alpha: float) -> str:
    """Where a treatment stands on the primary metric, in the engine's own terms."""
    if comparison.get("error"):
        return "no comparison yet (" + comparison["error"].lower().replace("_", " ") + ")"
    low, high = comparison["ci"]
    if engine == "bayesian":
        return "bayesian: no stopping rule; ships at a 95% chance to win"
    p = comparison.get("adjusted_p_value", comparison.get("p_value"))
    if engine == "frequentist":
        return "fixed horizon: read it once, at the planned sample size"
    if units < stats.DEFAULT_MIN_UNITS_PER_ARM:
        return (
            f"continue: {units:,} of the {stats.DEFAULT_MIN_UNITS_PER_ARM:,} recipients per "
            "arm the decision waits for"
        )
    if p is not None and p < alpha and low is not None and low > 0:
        return "stopped: crossed the boundary, better than control"
    if p is not None and p < alpha and high is not None and high < 0:
        return "stopped: crossed the boundary, worse than control"
    return "continue: inside the boundary, look again later"


def summary(results: dict) -> list[dict]:
    """Per treatment, on the primary (first goal) metric of a result view: the lift and its
    interval, the p-values (frequentist, sequential), the chance to win and the sequential
    status. The chance to win is the bayesian engine's; under another engine it is
    computed by the bayesian engine (flat prior) from the same counts, labelled so."""
    primary = next(m for m in results["metrics"] if m["role"] == "goal")
    spec = next(m for m in (*STEP_METRICS, *HOLDOUT_METRICS) if m.key == primary["key"])
    engine = results["engine"]
    by_name = {v["name"]: v for v in results["variations"]}
    control = by_name[results["control"]]

    def arm(variation: dict) -> stats.ArmStats:
        m = variation["metrics"][spec.key]
        return stats.ArmStats(m["n"], m["sum"], m.get("sum_squares"))

    rows = []
    for c in results["comparisons"]:
        if c["metric"] != spec.key:
            continue
        variation = by_name[c["variation"]]
        chance = c.get("chance_to_win")
        if chance is None:
            chance = stats.compare(
                spec.metric,
                arm(control),
                arm(variation),
                stats.CompareSettings(
                    engine="bayesian", difference_type=results["difference_type"]
                ),
            ).chance_to_win
        units = min(control["metrics"][spec.key]["n"], variation["metrics"][spec.key]["n"])
        rows.append(
            {
                "variant": c["variation"],
                "metric": spec.key,
                "lift": c["expected"],
                "ci_low": c["ci"][0],
                "ci_high": c["ci"][1],
                "p_value": c.get("p_value"),
                "adjusted_p_value": c.get("adjusted_p_value"),
                "chance_to_win": chance,
                "chance_to_win_engine": "bayesian"
                if engine == "bayesian"
                else "bayesian (flat prior, from the same counts)",
                "status": _status(engine, c, units, stats.DEFAULT_ALPHA),
            }
        )
    return rows
