-- One row per abandoned cart, with the first order that followed the abandonment within the
-- org's longest attribution window: an order of the cart itself, or of the same customer
-- (email, else customer id, else phone). Touched or not: this is the conversion the holdout
-- comparison and the journeys use.

with

carts as (

    select * from {{ ref('stg_app__carts') }}
    where abandoned_at is not null

),

orders as (

    select * from {{ ref('stg_app__orders') }}

),

org_settings as (

    select * from {{ ref('int_org_attribution_settings') }}

),

keyed_carts as (

    select
        carts.*,
        {{ customer_key('carts.email', 'carts.customer_id', 'carts.phone') }} as customer_key,
        org_settings.longest_window_seconds,
        org_settings.reporting_currency
    from carts
    inner join org_settings
        on carts.org_id = org_settings.org_id

),

keyed_orders as (

    select
        orders.*,
        {{ customer_key('orders.email', 'orders.customer_id', 'null') }} as customer_key
    from orders

),

-- Two equi-joins rather than one join on an OR, so each can be a hash join; UNION drops
-- the pairs both find.
matched_orders as (

    select
        keyed_carts.org_id,
        keyed_carts.cart_id,
        keyed_carts.abandoned_at,
        keyed_carts.longest_window_seconds,
        keyed_orders.order_id,
        keyed_orders.order_total,
        keyed_orders.currency,
        keyed_orders.ordered_at
    from keyed_carts
    inner join keyed_orders
        on keyed_carts.org_id = keyed_orders.org_id
        and keyed_carts.cart_id = keyed_orders.cart_id

    union

    select
        keyed_carts.org_id,
        keyed_carts.cart_id,
        keyed_carts.abandoned_at,
        keyed_carts.longest_window_seconds,
        keyed_orders.order_id,
        keyed_orders.order_total,
        keyed_orders.currency,
        keyed_orders.ordered_at
    from keyed_carts
    inner join keyed_orders
        on keyed_carts.org_id = keyed_orders.org_id
        and keyed_carts.customer_key = keyed_orders.customer_key

),

following_orders as (

    select
        org_id,
        cart_id,
        order_id,
        order_total,
        currency,
        ordered_at,
        row_number() over (
            partition by org_id, cart_id
            order by ordered_at, order_id
        ) as order_position
    from matched_orders
    where ordered_at >= abandoned_at
        and ordered_at <= abandoned_at + make_interval(secs => longest_window_seconds)

),

final as (

    select
        ---------- ids
        keyed_carts.org_id,
        keyed_carts.cart_id,
        following_orders.order_id,

        ---------- strings
        keyed_carts.currency as cart_currency,
        following_orders.currency as order_currency,
        keyed_carts.reporting_currency,

        ---------- numerics
        keyed_carts.cart_value,
        following_orders.order_total,
        keyed_carts.longest_window_seconds,

        ---------- booleans
        following_orders.order_id is not null as is_converted,
        -- Still inside the window: not yet lost.
        following_orders.order_id is null
        and now() < keyed_carts.abandoned_at
        + make_interval(secs => keyed_carts.longest_window_seconds) as is_open,

        ---------- timestamps
        keyed_carts.abandoned_at,
        following_orders.ordered_at

    from keyed_carts
    left join following_orders
        on keyed_carts.org_id = following_orders.org_id
        and keyed_carts.cart_id = following_orders.cart_id
        and following_orders.order_position = 1

)

select * from final
