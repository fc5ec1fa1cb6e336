-- What an incremental build recomputes (docs/analytics.md, "Incremental and full builds"):
-- one row per cart (order_id null) or order (cart_id null) whose mart rows it rewrites.
--   1. carts whose own row, messages, message callbacks, store events or orders changed
--      since the last build (minus the lookback), and carts whose conversion window closed
--      since (open becomes lost);
--   2. their customers, the customers of changed orders and of the orders of those carts;
--   3. orders of those carts and customers (an order is matched to its customer's earlier
--      carts), and changed orders;
--   4. every cart of those orders and of their customers, so each order's touches and each
--      cart's following order are all recomputed together.
-- Rebuilt by every build; empty in a full refresh, where every mart is rebuilt whole.

{{
    config(
        materialized='table',
        indexes=[{'columns': ['org_id', 'cart_id']}, {'columns': ['org_id', 'order_id']}],
        post_hook=['analyze {{ this }}'],
    )
}}

with

-- Each branch reads its source directly (not through one shared CTE of every cart), so the
-- planner reaches each table through the index that fits: by (org_id, cart_id),
-- (org_id, abandoned_at), (org_id, created_at) or the marts' change-time indexes. The orgs
-- drive the time-range lookups, as those indexes start with org_id.
org_settings as (

    select * from {{ ref('int_org_attribution_settings') }}

),

changed_carts as (

    select org_id, cart_id from {{ ref('stg_app__carts') }}
    where updated_at > {{ changes_since() }}
    union
    select org_id, cart_id from {{ ref('fct_messages') }}
    where source_changed_at > {{ changes_since() }}
    union
    select org_id, cart_id from {{ ref('fct_cart_events') }}
    where received_at > {{ changes_since() }} and cart_id is not null
    union
    select orders.org_id, orders.cart_id
    from org_settings
    inner join {{ ref('stg_app__orders') }} as orders
        on orders.org_id = org_settings.org_id
        and orders.created_at > {{ changes_since() }}
    where orders.cart_id is not null
    union
    -- A window closed since (the longest one: journeys and lift; the default one:
    -- fct_abandoned_carts): a cart without an order moves from open to lost.
    -- (abandoned_at + window > since, and <= now, as a range on abandoned_at.)
    -- (Looked up per org and window: as a join, the planner scanned every cart.)
    select closed.org_id, closed.cart_id
    from org_settings
    cross join lateral (
        values
            (org_settings.longest_window_seconds),
            (coalesce(org_settings.default_window_seconds, 432000))
    ) as windows (seconds)
    cross join lateral (
        select carts.org_id, carts.cart_id
        from {{ ref('stg_app__carts') }} as carts
        where carts.org_id = org_settings.org_id
            and carts.abandoned_at > {{ changes_since() }} - make_interval(secs => windows.seconds)
            and carts.abandoned_at <= now() - make_interval(secs => windows.seconds)
        -- offset 0 keeps the planner from flattening this back into that join.
        offset 0
    ) as closed

),

changed_orders as (

    select orders.org_id, orders.order_id
    from org_settings
    inner join {{ ref('stg_app__orders') }} as orders
        on orders.org_id = org_settings.org_id
        and orders.created_at > {{ changes_since() }}

),

customers as (

    select carts.org_id, {{ customer_key('carts.email', 'carts.customer_id', 'carts.phone') }} as customer_key
    from {{ ref('stg_app__carts') }} as carts
    inner join changed_carts
        on carts.org_id = changed_carts.org_id
        and carts.cart_id = changed_carts.cart_id
    union
    select orders.org_id, {{ customer_key('orders.email', 'orders.customer_id', 'null') }}
    from {{ ref('stg_app__orders') }} as orders
    inner join changed_carts
        on orders.org_id = changed_carts.org_id
        and orders.cart_id = changed_carts.cart_id
    union
    select orders.org_id, {{ customer_key('orders.email', 'orders.customer_id', 'null') }}
    from {{ ref('stg_app__orders') }} as orders
    inner join changed_orders
        on orders.org_id = changed_orders.org_id
        and orders.order_id = changed_orders.order_id

),

affected_orders as (

    select org_id, order_id from changed_orders
    union
    select orders.org_id, orders.order_id
    from {{ ref('stg_app__orders') }} as orders
    inner join changed_carts
        on orders.org_id = changed_carts.org_id
        and orders.cart_id = changed_carts.cart_id
    union
    select orders.org_id, orders.order_id
    from {{ ref('stg_app__orders') }} as orders
    inner join customers
        on orders.org_id = customers.org_id
        and {{ customer_key('orders.email', 'orders.customer_id', 'null') }} = customers.customer_key

),

-- The affected orders' own carts and their customers (with the customers above).
order_links as (

    select
        orders.org_id,
        orders.cart_id,
        {{ customer_key('orders.email', 'orders.customer_id', 'null') }} as customer_key
    from {{ ref('stg_app__orders') }} as orders
    inner join affected_orders
        on orders.org_id = affected_orders.org_id
        and orders.order_id = affected_orders.order_id

),

linked_customers as (

    select org_id, customer_key from customers
    union
    select org_id, customer_key from order_links

),

affected_carts as (

    select org_id, cart_id from changed_carts
    union
    select org_id, cart_id from order_links where cart_id is not null
    union
    select linked_carts.org_id, linked_carts.cart_id
    from ({{ carts_of_customers('linked_customers') }}) as linked_carts

),

final as (

    select org_id, cart_id, null::uuid as order_id from affected_carts
    union all
    select org_id, null::uuid as cart_id, order_id from affected_orders

)

select * from final
{% if flags.FULL_REFRESH %}
where false
{% endif %}
