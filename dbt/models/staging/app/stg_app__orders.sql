-- One select from the source, without the usual source/renamed CTEs: incremental builds
-- filter this view by the changed keys (a semi-join on int_changes), and PostgreSQL 15 only
-- turns that into index lookups (changed keys first) when the view is a plain select; over
-- an inlined CTE it hash-joins a scan of the whole table (docs/analytics.md).
select
    ---------- ids
    order_id,
    org_id,
    connection_id,
    cart_id,
    customer_id,
    external_id as order_external_id,
    checkout_token,
    cart_token,

    ---------- strings
    platform,
    lower(email) as email,
    upper(currency) as currency,
    financial_status,

    ---------- numerics
    total_price as order_total,

    ---------- timestamps
    ordered_at,
    created_at

from {{ source('app', 'orders') }}
