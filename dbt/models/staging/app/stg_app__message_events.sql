-- One select from the source, without the usual source/renamed CTEs: incremental builds
-- filter this view by the changed keys (a semi-join on int_changes), and PostgreSQL 15 only
-- turns that into index lookups (changed keys first) when the view is a plain select; over
-- an inlined CTE it hash-joins a scan of the whole table (docs/analytics.md).
select
    ---------- ids
    event_key,
    org_id,
    message_id,
    cart_id,

    ---------- strings
    lower(event_type) as event_type,
    url,

    ---------- booleans
    lower(event_type) = 'click' as is_click,
    -- A tracked click on the email's unsubscribe link (our /u/<token>) is no interest in
    -- the cart: it must not become a touch.
    lower(event_type) = 'click' and coalesce(url ~ '^https?://[^/]+/u/', false)
        as is_unsubscribe_click,

    ---------- timestamps
    occurred_at,
    received_at

from {{ source('app', 'message_events') }}
