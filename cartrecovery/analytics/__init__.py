"""Reads of the analytics marts (built by dbt, see docs/analytics.md): one function per
question, shared by the HTTP API and the dashboard so both give one answer.

Each takes a connection in the org's tenant transaction (``Database.tenant(org_id)``: the
marts are under row-level security) and returns a JSON-ready dict with ``as_of``, the build
time of the marts it read (null before the first ``cartrecovery warehouse build``).

- :func:`periods.parse_period` — ``24h|7d|30d|90d`` or from/to dates in the org's zone
- :func:`attribution.attribution` — recovered revenue per channel/campaign/step/variant, one model
- :func:`journeys.journeys` — touchpoint paths with counts
- :func:`lift.lift` — messaged vs held-out carts, with 95% intervals
- :func:`performance.campaign_performance` — one campaign's funnel per step and variant
- :func:`smart.smart` — smart send time and smart discount against their control share
- :func:`timeline.cart_timeline` — one cart's history (operational tables, not marts)
- :mod:`exports` — streamed CSV / Excel / Parquet exports of the marts
- :mod:`frames` — marts into Arrow (ADBC) for DuckDB and Polars
"""
