"""Warehouse checks beyond dbt's tests: mart freshness against raw events, row counts
against the app tables, and attribution credits summing to 1 per order and model."""

# No `from __future__ import annotations`: Dagster reads resource type hints at definition.
from datetime import timedelta

import dagster as dg
from psycopg import sql

from pipelines.resources import PostgresDatabase

# How far the newest store event in fct_cart_events may trail raw.events after a build.
MAX_CART_EVENTS_LAG = timedelta(hours=1)
CREDIT_TOLERANCE = 1e-9


@dg.asset_check(
    asset=dg.AssetKey(["marts", "fct_cart_events"]),
    description="fct_cart_events holds store events up to at most an hour before the newest "
    "one in raw.events.",
)
def fct_cart_events_is_fresh(database: PostgresDatabase) -> dg.AssetCheckResult:
    row = database.fetch(
        sql.SQL(
            "SELECT (SELECT max(received_at) FROM raw.events"
            "        WHERE source IN ('shopify', 'woocommerce', 'bigcommerce', 'magento',"
            "                         'generic', 'api')) AS raw_newest,"
            " (SELECT max(received_at) FROM {}) AS mart_newest"
        ).format(database.marts_table("fct_cart_events"))
    )[0]
    raw_newest, mart_newest = row["raw_newest"], row["mart_newest"]
    if raw_newest is None:
        passed, lag_seconds = True, 0.0
    elif mart_newest is None:
        passed, lag_seconds = False, None
    else:
        lag = max(raw_newest - mart_newest, timedelta(0))
        passed, lag_seconds = lag <= MAX_CART_EVENTS_LAG, lag.total_seconds()
    return dg.AssetCheckResult(
        passed=passed,
        metadata={
            "raw_newest": str(raw_newest),
            "mart_newest": str(mart_newest),
            "lag_seconds": lag_seconds,
        },
    )


def _missing_rows(database: PostgresDatabase, source: str, mart: str, key: str) -> int:
    """Rows of ``source`` created before the mart's build started that the mart lacks."""
    return database.fetch(
        sql.SQL(
            "SELECT count(*) AS missing FROM {source} AS s"
            " WHERE s.created_at < (SELECT max(built_at) FROM {mart})"
            " AND NOT EXISTS (SELECT 1 FROM {mart} AS m"
            "                 WHERE m.org_id = s.org_id AND m.{key} = s.{key})"
        ).format(
            source=sql.SQL(source),
            mart=database.marts_table(mart),
            key=sql.Identifier(key),
        )
    )[0]["missing"]


@dg.asset_check(
    asset=dg.AssetKey(["marts", "fct_orders"]),
    description="fct_orders has a row for every app.orders row created before its build.",
)
def fct_orders_row_count(database: PostgresDatabase) -> dg.AssetCheckResult:
    missing = _missing_rows(database, "app.orders", "fct_orders", "order_id")
    return dg.AssetCheckResult(passed=missing == 0, metadata={"missing_orders": missing})


@dg.asset_check(
    asset=dg.AssetKey(["marts", "fct_messages"]),
    description="fct_messages has a row for every app.outbox row created before its build.",
)
def fct_messages_row_count(database: PostgresDatabase) -> dg.AssetCheckResult:
    missing = _missing_rows(database, "app.outbox", "fct_messages", "message_id")
    return dg.AssetCheckResult(passed=missing == 0, metadata={"missing_messages": missing})


@dg.asset_check(
    asset=dg.AssetKey(["marts", "fct_attribution"]),
    description="Every order's credits sum to 1 under every attribution model.",
)
def attribution_credits_sum_to_one(database: PostgresDatabase) -> dg.AssetCheckResult:
    rows = database.fetch(
        sql.SQL(
            "SELECT count(*) AS orders_checked,"
            " count(*) FILTER (WHERE abs(total - 1) > %s) AS orders_off"
            " FROM (SELECT sum(credit) AS total FROM {}"
            "       GROUP BY org_id, order_id, model) AS per_order"
        ).format(database.marts_table("fct_attribution")),
        (CREDIT_TOLERANCE,),
    )[0]
    return dg.AssetCheckResult(
        passed=rows["orders_off"] == 0,
        metadata={
            "order_models_checked": rows["orders_checked"],
            "order_models_off": rows["orders_off"],
        },
    )


warehouse_checks = [
    fct_cart_events_is_fresh,
    fct_orders_row_count,
    fct_messages_row_count,
    attribution_credits_sum_to_one,
]
