{#- The SQL of models/intermediate/int_abandonments_joined_to_orders.sql; the filters (carts_where, orders_where)
    restrict its first scans for incremental marts (macros/incremental/changes.sql). -#}
{% macro int_abandonments_joined_to_orders_body(carts_where='true', orders_where='true') %}
with

carts as (

    select * from {{ ref('stg_app__carts') }}
    where abandoned_at is not null
        and {{ carts_where }}

),

orders as (

    select * from {{ ref('stg_app__orders') }}
    where {{ orders_where }}

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
{% endmacro %}

{#- Its rows: the view itself when nothing is filtered (so the models reading it keep that
    dependency, and their unit tests its fixture), else the SQL with the filters. Parsing
    renders the SQL too, so dbt records the tables a filtered build reads. -#}
{% macro int_abandonments_joined_to_orders_sql(carts_where='true', orders_where='true', inline=false) %}
    {%- if not execute -%}{%- set _ = int_abandonments_joined_to_orders_body(carts_where, orders_where) -%}{%- endif -%}
    {%- if inline or carts_where != 'true' or orders_where != 'true' -%}
    {{ int_abandonments_joined_to_orders_body(carts_where, orders_where) }}
    {%- else -%}
    select * from {{ ref('int_abandonments_joined_to_orders') }}
    {%- endif -%}
{% endmacro %}
