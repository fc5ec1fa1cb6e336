"""The Live page's numbers: tiles and the charts beside them, read in one statement.

One statement means one snapshot: the tiles and the charts of one screen are computed from the
same rows over the same window ``[start, end)``, so they always agree (docs/dashboard.md).
Every part reads an indexed operational table (``app.carts``, ``app.outbox``,
``app.recoveries``; indexes in migration 0015), never ``raw.events``.

- ``active_carts``: carts whose status is ``active`` now (a point in time, not windowed).
- ``abandoned_last_hour``: carts marked abandoned in the hour before ``end``.
- ``carts_abandoned``, ``messages_sent``, ``carts_recovered``: as in ``cartrecovery.metrics``,
  bounded by the window.
- ``revenue_by_currency``: recovered revenue per currency, never one sum across currencies.
- ``recovery_rate``: carts_recovered / carts_abandoned in the window (0 when none).
- ``series``: per time bucket, carts abandoned and recovered, and revenue per currency.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

import psycopg

# Bars per chart: a period is cut into buckets of this size (the chart's resolution).
BUCKETS = (
    (timedelta(hours=1), timedelta(minutes=5)),
    (timedelta(hours=24), timedelta(hours=1)),
    (timedelta(days=7), timedelta(hours=6)),
)
LONG_BUCKET = timedelta(days=1)
UNKNOWN_CURRENCY = "unknown"

_SQL = """
WITH rec AS (
  SELECT date_bin(%(bucket)s, recovered_at, %(start)s) AS at,
         coalesce(upper(currency), %(unknown)s) AS currency,
         count(*) AS recovered, sum(revenue) AS revenue
  FROM app.recoveries
  WHERE org_id = %(org)s AND recovered_at >= %(start)s AND recovered_at < %(end)s
  GROUP BY 1, 2
), abandoned AS (
  SELECT date_bin(%(bucket)s, abandoned_at, %(start)s) AS at, count(*) AS abandoned
  FROM app.carts
  WHERE org_id = %(org)s AND abandoned_at >= %(start)s AND abandoned_at < %(end)s
  GROUP BY 1
), times AS (
  SELECT at FROM abandoned UNION SELECT at FROM rec
)
SELECT
  (SELECT count(*) FROM app.carts WHERE org_id = %(org)s AND status = 'active') AS active_carts,
  (SELECT count(*) FROM app.carts
     WHERE org_id = %(org)s AND abandoned_at >= %(end)s - interval '1 hour'
       AND abandoned_at < %(end)s) AS abandoned_last_hour,
  (SELECT coalesce(sum(abandoned), 0) FROM abandoned)::bigint AS carts_abandoned,
  (SELECT count(*) FROM app.outbox
     WHERE org_id = %(org)s AND status = 'sent' AND sent_at >= %(start)s
       AND sent_at < %(end)s) AS messages_sent,
  (SELECT coalesce(sum(recovered), 0) FROM rec)::bigint AS carts_recovered,
  (SELECT coalesce(jsonb_object_agg(currency, revenue::text), '{}'::jsonb)
     FROM (SELECT currency, sum(revenue) AS revenue FROM rec GROUP BY currency) r)
     AS revenue_by_currency,
  (SELECT coalesce(jsonb_agg(jsonb_build_object(
            'at', t.at,
            'abandoned', coalesce(a.abandoned, 0),
            'recovered', coalesce(r.recovered, 0),
            'revenue', coalesce(r.revenue, '{}'::jsonb))
          ORDER BY t.at), '[]'::jsonb)
     FROM times t
     LEFT JOIN abandoned a ON a.at = t.at
     LEFT JOIN (SELECT at, sum(recovered) AS recovered,
                       jsonb_object_agg(currency, revenue::text) AS revenue
                FROM rec GROUP BY at) r ON r.at = t.at) AS series
"""


def bucket_for(window: timedelta) -> timedelta:
    """The chart resolution for a window: 5 min for an hour, hourly for a day, and so on."""
    return next((bucket for span, bucket in BUCKETS if window <= span), LONG_BUCKET)


def live_snapshot(
    conn: psycopg.Connection, org_id: UUID | str, window: timedelta, end: datetime | None = None
) -> dict:
    """Tiles and chart series for ``[end - window, end)`` (``end`` defaults to now), in one
    statement. Money is ``Decimal`` per currency; bucket times are UTC datetimes."""
    end = end or datetime.now(UTC)
    start = end - window
    # A few milliseconds of index reads: JIT compiling it (when the planner's estimate
    # crosses jit_above_cost) would cost a hundred times more.
    conn.execute("SET LOCAL jit = off")
    row = conn.execute(
        _SQL,
        {
            "org": org_id,
            "start": start,
            "end": end,
            "bucket": bucket_for(window),
            "unknown": UNKNOWN_CURRENCY,
        },
    ).fetchone()
    abandoned = row["carts_abandoned"]
    return {
        "start": start,
        "end": end,
        "bucket": bucket_for(window),
        "active_carts": row["active_carts"],
        "abandoned_last_hour": row["abandoned_last_hour"],
        "carts_abandoned": abandoned,
        "messages_sent": row["messages_sent"],
        "carts_recovered": row["carts_recovered"],
        "revenue_by_currency": {
            code: Decimal(amount) for code, amount in sorted(row["revenue_by_currency"].items())
        },
        "recovery_rate": round(row["carts_recovered"] / abandoned, 4) if abandoned else 0.0,
        "series": [
            {
                "at": datetime.fromisoformat(b["at"]).astimezone(UTC),
                "abandoned": int(b["abandoned"]),
                "recovered": int(b["recovered"]),
                "revenue": {code: Decimal(v) for code, v in b["revenue"].items()},
            }
            for b in row["series"]
        ],
    }


def latest_events(conn: psycopg.Connection, org_id: UUID | str, limit: int = 15) -> list[dict]:
    """The org's newest inbound events (topic, source, cart, times), newest first: an index
    scan of the newest rows of ``raw.events`` (``events_org_received``), not a scan."""
    rows = conn.execute(
        """
        SELECT received_at, topic, source, cart_id::text AS cart_id, occurred_at
        FROM raw.events WHERE org_id = %s
        ORDER BY received_at DESC LIMIT %s
        """,
        (org_id, limit),
    ).fetchall()
    return [dict(r) for r in rows]
