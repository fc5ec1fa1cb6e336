-- One select from the source, without the usual source/renamed CTEs: incremental builds
-- filter this view by the changed keys (a semi-join on int_changes), and PostgreSQL 15 only
-- turns that into index lookups (changed keys first) when the view is a plain select; over
-- an inlined CTE it hash-joins a scan of the whole table (docs/analytics.md).
select
    ---------- ids
    cart_id,
    org_id,
    connection_id,
    customer_id,
    external_id as cart_external_id,
    cart_token,

    ---------- strings
    platform,
    lower(email) as email,
    phone,
    upper(currency) as currency,
    restore_url,
    status,
    -- the shopper's device class (migration 0019); unknown where nothing told it
    coalesce(device, 'unknown') as device,

    ---------- numerics
    total_price as cart_value,
    item_count,

    ---------- timestamps
    -- when the store says the cart began, else when we first saw it
    coalesce(source_created_at, created_at) as started_at,
    source_updated_at,
    last_activity_at,
    abandoned_at,
    converted_at,
    created_at,
    updated_at

from {{ source('app', 'carts') }}
