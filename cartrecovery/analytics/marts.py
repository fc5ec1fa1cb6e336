"""Where the dbt marts are, whether they were built, and when (``as_of``).

The marts live in ``<DBT_POSTGRES_SCHEMA>_marts`` (``analytics_marts`` by default, as
``dbt/profiles.yml`` names it). Every build stamps each mart's table comment with its build
time (``dbt/macros/protect_tenant_rows.sql``): that is the ``as_of`` of an answer, the same
for every org, readable under row-level security. Before the first build the marts do not
exist: readers then answer empty with ``as_of`` null instead of failing.
"""

from __future__ import annotations

import os
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from cartrecovery import org_settings
from cartrecovery.metrics import NO_CURRENCY

COMMENT_PREFIX = "built_at "


def schema() -> str:
    return os.environ.get("DBT_POSTGRES_SCHEMA", "analytics") + "_marts"


def table(name: str) -> sql.Composed:
    """``analytics_marts.<name>`` as a safely quoted identifier."""
    return sql.Identifier(schema(), name)


def as_of(conn: psycopg.Connection, *names: str) -> datetime | None:
    """The build time of the oldest of the marts ``names``; None when any was never built."""
    return oldest(stamps(conn, *names), *names)


def stamps(conn: psycopg.Connection, *names: str) -> dict[str, datetime | None]:
    """Each mart's build time (None: never built), read in one query: an answer over
    several groups of marts reads them all at once and takes :func:`oldest` of each group."""
    row = conn.execute(
        sql.SQL("SELECT {} AS comments").format(STAMPS_SQL),
        {"schema": schema(), "marts": list(names)},
    ).fetchone()
    return parse_stamps(names, row["comments"])


# The table comments of the marts ``%(marts)s`` in schema ``%(schema)s``, in their order: a
# scalar subquery, so that a caller can add it to a query it runs anyway.
STAMPS_SQL = sql.SQL(
    "(SELECT array_agg(obj_description(to_regclass(format('%%I.%%I', %(schema)s::text, n)),"
    " 'pg_class') ORDER BY i) FROM unnest(%(marts)s::text[]) WITH ORDINALITY AS t(n, i))"
)


def parse_stamps(names, comments: list[str | None] | None) -> dict[str, datetime | None]:
    """:data:`STAMPS_SQL`'s comments as ``{mart: build time or None}``."""
    found = {}
    for name, comment in zip(names, comments or [], strict=True):
        comment = comment or ""
        found[name] = (
            datetime.fromisoformat(comment.removeprefix(COMMENT_PREFIX))
            if comment.startswith(COMMENT_PREFIX)
            else None
        )
    return found


def oldest(found: dict[str, datetime | None], *names: str) -> datetime | None:
    """The oldest build time of ``names`` in :func:`stamps`' answer; None when any was never
    built (or no name is given)."""
    times = [found[name] for name in names]
    if not times or any(t is None for t in times):
        return None
    return min(times)


def as_of_text(conn: psycopg.Connection, *names: str) -> str | None:
    """:func:`as_of` as ISO 8601 text, for answers."""
    stamp = as_of(conn, *names)
    return stamp.isoformat() if stamp else None


def reporting_currency(
    conn: psycopg.Connection, org_id: UUID | str, orders_built: bool | None = None
) -> str | None:
    """The org's reporting currency as the last build applied it (``fct_orders``
    flags its orders in it), so single numbers match the marts; else (no build, or no order
    in it yet) ``org_settings.reporting_currency``: the setting, else the currency of most
    of the org's orders. Reading the first flagged row is cheap; counting every order is not.
    ``orders_built``: whether ``fct_orders`` was built, when the caller read it already."""
    if orders_built is None:
        orders_built = as_of(conn, "fct_orders") is not None
    if orders_built:
        row = conn.execute(
            sql.SQL(
                "SELECT currency FROM {} WHERE org_id = %s AND is_reporting_currency LIMIT 1"
            ).format(table("fct_orders")),
            (org_id,),
        ).fetchone()
        if row is not None and row["currency"]:
            return row["currency"]
    return org_settings.reporting_currency(conn, org_id)


def as_of_and_currency(
    conn: psycopg.Connection, org_id: UUID | str, *names: str
) -> tuple[str | None, str | None]:
    """:func:`as_of_text` of the marts ``names`` and :func:`reporting_currency`, for an answer
    that needs both: ``fct_orders``' build time is read with theirs, in one query."""
    found = stamps(conn, *names, "fct_orders")
    stamp = oldest(found, *names)
    currency = reporting_currency(conn, org_id, found["fct_orders"] is not None)
    return (stamp.isoformat() if stamp else None), currency


def number(value: Any) -> Any:
    """Decimals as floats for JSON; everything else unchanged."""
    return float(value) if isinstance(value, Decimal) else value


def by_currency(pairs: dict | None) -> dict[str, float]:
    """``{currency: amount}`` with amounts as floats and a missing currency as ``XXX``."""
    return {(k or NO_CURRENCY): float(v) for k, v in sorted((pairs or {}).items())}


def org_as_of(conn: psycopg.Connection, org_id: UUID | str) -> datetime | None:
    """The marts' build time if the last build holds any abandonment of the org, else None
    (the dashboard then leaves the warehouse pages out rather than showing them empty)."""
    stamp = as_of(conn, "fct_journeys")
    if stamp is None:
        return None
    row = conn.execute(
        sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE org_id = %s) AS found").format(
            table("fct_journeys")
        ),
        (org_id,),
    ).fetchone()
    return stamp if row["found"] else None
