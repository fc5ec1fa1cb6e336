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

Money is never added across currencies: every ``revenue_recovered`` counts only recoveries in
the org's reporting currency (``org_settings.reporting_currency``; a recovery stored without
a currency counts when the org has none either), and ``revenue_recovered_by_currency`` gives
every currency its own sum (``XXX``: no currency recorded).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

import psycopg

from cartrecovery import org_settings

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


# ISO 4217's code for "no currency": the key of recoveries stored without one.
NO_CURRENCY = "XXX"
_UNSET: object = object()


def _currency(conn: psycopg.Connection, org_id: UUID, currency) -> str | None:
    return org_settings.reporting_currency(conn, org_id) if currency is _UNSET else currency


def _by_currency(pairs: dict | None) -> dict[str, float]:
    return {k: float(v) for k, v in sorted((pairs or {}).items())}


# Per group (the CTE's key columns): revenue in the reporting currency and per currency,
# from rows (key..., currency, revenue) of the CTE ``money``.
_MONEY = """
  money_per_currency AS (
    SELECT {keys}, coalesce(upper(currency), 'XXX') AS currency,
           upper(currency) IS NOT DISTINCT FROM %(cur)s AS is_reporting,
           sum(revenue) AS revenue
    FROM money GROUP BY {keys}, {currency_pos}, {reporting_pos}
  ),
  money_by_key AS (
    SELECT {keys},
           coalesce(sum(revenue) FILTER (WHERE is_reporting), 0) AS revenue_recovered,
           jsonb_object_agg(currency, revenue ORDER BY currency) AS revenue_recovered_by_currency
    FROM money_per_currency GROUP BY {keys}
  )
"""


def _money(*keys: str) -> str:
    return _MONEY.format(
        keys=", ".join(keys), currency_pos=len(keys) + 1, reporting_pos=len(keys) + 2
    )


def dashboard_metrics(
    conn: psycopg.Connection, org_id: UUID, start: datetime, currency=_UNSET
) -> dict:
    """The headline numbers for one org since ``start``; money in ``currency`` (default: the
    org's reporting currency) and per currency."""
    currency = _currency(conn, org_id, currency)
    row = conn.execute(
        """
        WITH money AS (
          SELECT 1 AS k, currency, revenue FROM app.recoveries
          WHERE org_id = %(org)s AND recovered_at >= %(start)s
        ),
        """
        + _money("k")
        + """
        SELECT
          (SELECT count(*) FROM app.carts
             WHERE org_id = %(org)s AND created_at >= %(start)s) AS carts_tracked,
          (SELECT count(*) FROM app.carts
             WHERE org_id = %(org)s AND abandoned_at >= %(start)s) AS carts_abandoned,
          (SELECT count(*) FROM app.outbox
             WHERE org_id = %(org)s AND status = 'sent' AND sent_at >= %(start)s)
             AS messages_sent,
          (SELECT count(*) FROM money) AS carts_recovered,
          (SELECT revenue_recovered FROM money_by_key) AS revenue_recovered,
          (SELECT revenue_recovered_by_currency FROM money_by_key)
             AS revenue_recovered_by_currency
        """,
        {"org": org_id, "start": start, "cur": currency},
    ).fetchone()
    abandoned = row["carts_abandoned"]
    return {
        "carts_tracked": row["carts_tracked"],
        "carts_abandoned": abandoned,
        "messages_sent": row["messages_sent"],
        "carts_recovered": row["carts_recovered"],
        "reporting_currency": currency,
        "revenue_recovered": float(row["revenue_recovered"] or Decimal(0)),
        "revenue_recovered_by_currency": _by_currency(row["revenue_recovered_by_currency"]),
        "recovery_rate": round(row["carts_recovered"] / abandoned, 4) if abandoned else 0.0,
    }


def by_channel(
    conn: psycopg.Connection, org_id: UUID, start: datetime, currency=_UNSET
) -> list[dict]:
    currency = _currency(conn, org_id, currency)
    rows = conn.execute(
        """
        WITH sent AS (
          SELECT o.channel, count(*) FILTER (WHERE o.status = 'sent') AS messages_sent,
                 count(r.cart_id) AS carts_recovered
          FROM app.outbox o
          LEFT JOIN app.recoveries r
            ON r.org_id = o.org_id AND r.message_id = o.message_id
          WHERE o.org_id = %(org)s AND o.created_at >= %(start)s
          GROUP BY o.channel
        ),
        money AS (
          SELECT o.channel, r.currency, r.revenue
          FROM app.outbox o
          JOIN app.recoveries r ON r.org_id = o.org_id AND r.message_id = o.message_id
          WHERE o.org_id = %(org)s AND o.created_at >= %(start)s
        ),
        """
        + _money("channel")
        + """
        SELECT s.channel, s.messages_sent, s.carts_recovered,
               coalesce(m.revenue_recovered, 0) AS revenue_recovered,
               coalesce(m.revenue_recovered_by_currency, '{}'::jsonb)
                 AS revenue_recovered_by_currency
        FROM sent s LEFT JOIN money_by_key m ON m.channel = s.channel
        ORDER BY s.channel
        """,
        {"org": org_id, "start": start, "cur": currency},
    ).fetchall()
    return [_floats(r) for r in rows]


def by_campaign(
    conn: psycopg.Connection, org_id: UUID, start: datetime, currency=_UNSET
) -> list[dict]:
    currency = _currency(conn, org_id, currency)
    rows = conn.execute(
        """
        WITH counts AS (
          SELECT c.campaign_id, c.name,
                 count(o.message_id) FILTER (WHERE o.status = 'sent') AS messages_sent,
                 count(r.cart_id) AS carts_recovered
          FROM app.campaigns c
          LEFT JOIN app.outbox o
            ON o.org_id = c.org_id AND o.campaign_id = c.campaign_id
           AND o.created_at >= %(start)s
          LEFT JOIN app.recoveries r
            ON r.org_id = o.org_id AND r.message_id = o.message_id
          WHERE c.org_id = %(org)s
          GROUP BY c.campaign_id, c.name
        ),
        money AS (
          SELECT o.campaign_id, r.currency, r.revenue
          FROM app.outbox o
          JOIN app.recoveries r ON r.org_id = o.org_id AND r.message_id = o.message_id
          WHERE o.org_id = %(org)s AND o.created_at >= %(start)s
        ),
        """
        + _money("campaign_id")
        + """
        SELECT c.campaign_id, c.name, c.messages_sent, c.carts_recovered,
               coalesce(m.revenue_recovered, 0) AS revenue_recovered,
               coalesce(m.revenue_recovered_by_currency, '{}'::jsonb)
                 AS revenue_recovered_by_currency
        FROM counts c LEFT JOIN money_by_key m ON m.campaign_id = c.campaign_id
        ORDER BY revenue_recovered DESC, c.name
        """,
        {"org": org_id, "start": start, "cur": currency},
    ).fetchall()
    return [_floats(r) for r in rows]


def by_day(conn: psycopg.Connection, org_id: UUID, start: datetime, currency=_UNSET) -> list[dict]:
    currency = _currency(conn, org_id, currency)
    rows = conn.execute(
        """
        WITH days AS (
          SELECT generate_series(date_trunc('day', %(start)s::timestamptz AT TIME ZONE 'UTC'),
                                 date_trunc('day', now() AT TIME ZONE 'UTC'),
                                 interval '1 day')::date AS day
        ),
        money AS (
          SELECT (r.recovered_at AT TIME ZONE 'UTC')::date AS day, r.currency, r.revenue
          FROM app.recoveries r
          WHERE r.org_id = %(org)s AND r.recovered_at >= %(start)s - interval '1 day'
        ),
        """
        + _money("day")
        + """
        SELECT d.day,
          (SELECT count(*) FROM app.carts c WHERE c.org_id = %(org)s
             AND (c.abandoned_at AT TIME ZONE 'UTC')::date = d.day) AS carts_abandoned,
          (SELECT count(*) FROM money x WHERE x.day = d.day) AS carts_recovered,
          coalesce(m.revenue_recovered, 0) AS revenue_recovered,
          coalesce(m.revenue_recovered_by_currency, '{}'::jsonb)
            AS revenue_recovered_by_currency
        FROM days d LEFT JOIN money_by_key m ON m.day = d.day ORDER BY d.day
        """,
        {"org": org_id, "start": start, "cur": currency},
    ).fetchall()
    return [{**_floats(r), "day": r["day"].isoformat()} for r in rows]


def _floats(row: dict) -> dict:
    return {
        k: (
            _by_currency(v)
            if k == "revenue_recovered_by_currency"
            else float(v)
            if isinstance(v, Decimal)
            else (str(v) if isinstance(v, UUID) else v)
        )
        for k, v in row.items()
    }
