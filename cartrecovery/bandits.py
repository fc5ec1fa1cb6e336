"""Thompson sampling over a step's content variants (``allocation: "thompson"``).

The traffic shares come from ``stats.thompson_allocation`` fed by each variant's results so
far: ``trials`` = the step's messages sent with that variant, ``successes`` = those that were
clicked (a tracked click, not on the unsubscribe link) or whose cart was ordered after the
send. Every share the scheduler uses is recorded in ``app.bandit_allocations`` with the counts
it came from; a share is reused for ``REFRESH_SECONDS`` before it is computed again, so a busy
scheduler does not recompute it for every cart.

A customer who already got a variant of the step on an earlier cart keeps it (found by the
cart's own email or phone), so a shifting split never moves a customer between variants.
"""

from __future__ import annotations

from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from . import stats

REFRESH_SECONDS = 300
DEFAULT_MIN_SHARE = 0.05


def min_share(step: dict, arms: int) -> float:
    """The step's ``min_share`` (default 0.05, never above 1 / arms)."""
    value = step.get("min_share")
    share = DEFAULT_MIN_SHARE if value is None else float(value)
    return min(share, 1 / arms)


def counts(
    conn: psycopg.Connection, org_id, campaign_id, step_index: int, names: list[str]
) -> tuple[list[int], list[int]]:
    """(successes, trials) per variant name, in the order of ``names``."""
    rows = conn.execute(
        """
        SELECT o.variant,
               count(*) AS trials,
               count(*) FILTER (WHERE EXISTS (
                   SELECT 1 FROM app.message_events e
                   WHERE e.org_id = o.org_id AND e.message_id = o.message_id
                     AND e.event_type = 'click'
                     AND NOT coalesce(e.url ~ '^https?://[^/]+/u/', false))
                 OR EXISTS (
                   SELECT 1 FROM app.orders r
                   WHERE r.org_id = o.org_id AND r.cart_id = o.cart_id
                     AND r.ordered_at >= o.sent_at)) AS successes
        FROM app.outbox o
        WHERE o.org_id = %s AND o.campaign_id = %s AND o.step_index = %s
          AND o.status = 'sent' AND o.variant = ANY(%s)
        GROUP BY o.variant
        """,
        (org_id, campaign_id, step_index, names),
    ).fetchall()
    found = {r["variant"]: r for r in rows}
    return (
        [int(found[n]["successes"]) if n in found else 0 for n in names],
        [int(found[n]["trials"]) if n in found else 0 for n in names],
    )


def latest(conn: psycopg.Connection, org_id, campaign_id, step_index: int) -> dict | None:
    return conn.execute(
        """
        SELECT *, allocated_at > now() - make_interval(secs => %s) AS fresh
        FROM app.bandit_allocations
        WHERE org_id = %s AND campaign_id = %s AND step_index = %s
        ORDER BY allocated_at DESC LIMIT 1
        """,
        (REFRESH_SECONDS, org_id, campaign_id, step_index),
    ).fetchone()


def allocate(conn: psycopg.Connection, org_id, campaign_id, step_index: int, step: dict) -> dict:
    """Compute the step's shares from the counts so far and record them; returns the row."""
    names = [v["name"] for v in step.get("variants") or [] if isinstance(v, dict)]
    successes, trials = counts(conn, org_id, campaign_id, step_index, names)
    floor = min_share(step, len(names))
    result = stats.thompson_allocation(successes, trials, min_share=floor)
    return conn.execute(
        """
        INSERT INTO app.bandit_allocations (org_id, campaign_id, step_index, min_share, shares,
                                            probability_best, successes, trials)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
        RETURNING *
        """,
        (
            org_id,
            campaign_id,
            step_index,
            floor,
            Jsonb(dict(zip(names, result.weights, strict=True))),
            Jsonb(dict(zip(names, result.probability_best, strict=True))),
            Jsonb(dict(zip(names, successes, strict=True))),
            Jsonb(dict(zip(names, trials, strict=True))),
        ),
    ).fetchone()


def current_weights(
    conn: psycopg.Connection, org_id, campaign_id, step_index: int, step: dict
) -> list[float]:
    """The shares to split the next cart by, in the order of the step's variants: the
    latest recorded ones while fresh and for the same variants, else newly allocated."""
    names = [v["name"] for v in step.get("variants") or [] if isinstance(v, dict)]
    row = latest(conn, org_id, campaign_id, step_index)
    if row is None or not row["fresh"] or set(row["shares"]) != set(names):
        row = allocate(conn, org_id, campaign_id, step_index, step)
    return [float(row["shares"][n]) for n in names]


def earlier_variant(
    conn: psycopg.Connection, org_id, campaign_id, step_index: int, cart_id, customer: str
) -> str | None:
    """The variant of this step an earlier cart of the same customer got, if any."""
    kind, _, value = customer.partition(":")
    column = {"email": "lower(c.email)", "phone": "c.phone"}.get(kind)
    if column is None:
        return None
    row = conn.execute(
        f"""
        SELECT o.variant FROM app.outbox o
        JOIN app.carts c ON c.org_id = o.org_id AND c.cart_id = o.cart_id
        WHERE o.org_id = %s AND o.campaign_id = %s AND o.step_index = %s
          AND o.variant IS NOT NULL AND o.cart_id <> %s AND {column} = %s
        ORDER BY o.created_at LIMIT 1
        """,
        (org_id, campaign_id, step_index, cart_id, value),
    ).fetchone()
    return row["variant"] if row else None


def history(conn: psycopg.Connection, org_id, campaign_id: UUID, step_index: int) -> list[dict]:
    """Every recorded allocation of the step, oldest first."""
    return conn.execute(
        """
        SELECT allocated_at, min_share, shares, probability_best, successes, trials
        FROM app.bandit_allocations
        WHERE org_id = %s AND campaign_id = %s AND step_index = %s
        ORDER BY allocated_at
        """,
        (org_id, campaign_id, step_index),
    ).fetchall()
