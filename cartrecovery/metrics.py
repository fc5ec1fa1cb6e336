"""Live operational metrics: the documented queries behind the dashboard tiles and
``GET /api/v1/analytics/dashboard``.

These read ``app.*`` directly (indexed, sub-second) so tiles move as events arrive; history
and anything heavier comes from the dbt marts. Each metric is defined once, here:

- carts_tracked: carts first seen in the period.
- carts_abandoned: carts marked abandoned in the period.
- messages_sent: outbox messages a provider accepted in the period.
- carts_recovered / revenue_recovered: recoveries (an order after a click on a recovery
  message within the attribution window) recorded in the period, and their order revenue.
- recovery_rate: carts_recovered / carts_abandoned (0 when nothing was abandoned).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

import psycopg

_PERIOD = re.compile(r"^(\d{1,4})([hdw])$")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def parse_period(period: str) -> timedelta:
    """``30d``, ``24h``, ``2w`` → timedelta; ValueError for anything else."""
    match = _PERIOD.match(period or "")
    if not match or int(match.group(1)) == 0:
        raise ValueError("period must look like 24h, 30d or 2w")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def since(period: str, now: datetime | None = None) -> datetime:
    return (now or datetime.now(UTC)) - parse_period(period)


def dashboard_metrics(conn: psycopg.Connection, org_id: UUID, start: datetime) -> dict:
    """The headline numbers for one org since ``start``."""
    row = conn.execute(
        """
        SELECT
          (SELECT count(*) FROM app.carts
             WHERE org_id = %(org)s AND created_at >= %(start)s) AS carts_tracked,
          (SELECT count(*) FROM app.carts
             WHERE org_id = %(org)s AND abandoned_at >= %(start)s) AS carts_abandoned,
          (SELECT count(*) FROM app.outbox
             WHERE org_id = %(org)s AND status = 'sent' AND sent_at >= %(start)s)
             AS messages_sent,
          (SELECT count(*) FROM app.recoveries
             WHERE org_id = %(org)s AND recovered_at >= %(start)s) AS carts_recovered,
          (SELECT coalesce(sum(revenue), 0) FROM app.recoveries
             WHERE org_id = %(org)s AND recovered_at >= %(start)s) AS revenue_recovered
        """,
        {"org": org_id, "start": start},
    ).fetchone()
    abandoned = row["carts_abandoned"]
    return {
        "carts_tracked": row["carts_tracked"],
        "carts_abandoned": abandoned,
        "messages_sent": row["messages_sent"],
        "carts_recovered": row["carts_recovered"],
        "revenue_recovered": float(row["revenue_recovered"] or Decimal(0)),
        "recovery_rate": round(row["carts_recovered"] / abandoned, 4) if abandoned else 0.0,
    }


def by_channel(conn: psycopg.Connection, org_id: UUID, start: datetime) -> list[dict]:
    rows = conn.execute(
        """
        SELECT o.channel,
               count(*) FILTER (WHERE o.status = 'sent') AS messages_sent,
               count(r.cart_id) AS carts_recovered,
               coalesce(sum(r.revenue), 0) AS revenue_recovered
        FROM app.outbox o
        LEFT JOIN app.recoveries r
          ON r.org_id = o.org_id AND r.message_id = o.message_id
        WHERE o.org_id = %(org)s AND o.created_at >= %(start)s
        GROUP BY o.channel ORDER BY o.channel
        """,
        {"org": org_id, "start": start},
    ).fetchall()
    return [_floats(r) for r in rows]


def by_campaign(conn: psycopg.Connection, org_id: UUID, start: datetime) -> list[dict]:
    rows = conn.execute(
        """
        SELECT c.campaign_id, c.name,
               count(o.message_id) FILTER (WHERE o.status = 'sent') AS messages_sent,
               count(r.cart_id) AS carts_recovered,
               coalesce(sum(r.revenue), 0) AS revenue_recovered
        FROM app.campaigns c
        LEFT JOIN app.outbox o
          ON o.org_id = c.org_id AND o.campaign_id = c.campaign_id AND o.created_at >= %(start)s
        LEFT JOIN app.recoveries r
          ON r.org_id = o.org_id AND r.message_id = o.message_id
        WHERE c.org_id = %(org)s
        GROUP BY c.campaign_id, c.name ORDER BY revenue_recovered DESC, c.name
        """,
        {"org": org_id, "start": start},
    ).fetchall()
    return [_floats(r) for r in rows]


def by_day(conn: psycopg.Connection, org_id: UUID, start: datetime) -> list[dict]:
    rows = conn.execute(
        """
        WITH days AS (
          SELECT generate_series(date_trunc('day', %(start)s::timestamptz AT TIME ZONE 'UTC'),
                                 date_trunc('day', now() AT TIME ZONE 'UTC'),
                                 interval '1 day')::date AS day
        )
        SELECT d.day,
          (SELECT count(*) FROM app.carts c WHERE c.org_id = %(org)s
             AND (c.abandoned_at AT TIME ZONE 'UTC')::date = d.day) AS carts_abandoned,
          (SELECT count(*) FROM app.recoveries r WHERE r.org_id = %(org)s
             AND (r.recovered_at AT TIME ZONE 'UTC')::date = d.day) AS carts_recovered,
          (SELECT coalesce(sum(revenue), 0) FROM app.recoveries r WHERE r.org_id = %(org)s
             AND (r.recovered_at AT TIME ZONE 'UTC')::date = d.day) AS revenue_recovered
        FROM days d ORDER BY d.day
        """,
        {"org": org_id, "start": start},
    ).fetchall()
    return [{**_floats(r), "day": r["day"].isoformat()} for r in rows]


def _floats(row: dict) -> dict:
    return {
        k: (float(v) if isinstance(v, Decimal) else (str(v) if isinstance(v, UUID) else v))
        for k, v in row.items()
    }
