{#- The SQL of models/intermediate/int_orders_joined_to_touches.sql; the filters (orders_where, carts_where, messages_where)
    restrict its first scans for incremental marts (macros/incremental/changes.sql). -#}
{% macro int_orders_joined_to_touches_body(orders_where='true', carts_where='true', messages_where='true') %}
with

touches as (

    {{ int_touches_sql(carts_where, messages_where) }}

),

carts as (

    -- Not filtered: the touches are, and their carts are looked up by key.
    select * from {{ ref('stg_app__carts') }}

),

orders as (

    select * from {{ ref('stg_app__orders') }}
    where {{ orders_where }}

),

org_settings as (

    select * from {{ ref('int_org_attribution_settings') }}

),

touched_carts as (

    select
        touches.*,
        carts.abandoned_at,
        {{ customer_key('carts.email', 'carts.customer_id', 'carts.phone') }} as customer_key
    from touches
    {% if carts_where == 'true' -%}
    inner join carts
        on touches.org_id = carts.org_id
        and touches.cart_id = carts.cart_id
    {%- else -%}
    -- A filtered build's few touches look their carts up one by one (as a join, the planner
    -- hashed them and read every cart); offset 0 keeps it from flattening this into one.
    cross join lateral (
        select * from carts
        where carts.org_id = touches.org_id and carts.cart_id = touches.cart_id
        offset 0
    ) as carts
    {%- endif %}

),

keyed_orders as (

    select
        orders.*,
        {{ customer_key('orders.email', 'orders.customer_id', 'null') }} as customer_key
    from orders

),

-- Two equi-joins rather than one join on an OR, so each can be a hash join; UNION drops
-- the pairs both find (a customer's own cart).
candidates as (

    select
        keyed_orders.org_id,
        keyed_orders.order_id,
        keyed_orders.cart_id as order_cart_id,
        keyed_orders.order_total,
        keyed_orders.currency,
        keyed_orders.ordered_at,
        touched_carts.message_id,
        touched_carts.cart_id as touched_cart_id,
        touched_carts.campaign_id,
        touched_carts.channel,
        touched_carts.variant,
        touched_carts.step_index,
        touched_carts.touch_type,
        touched_carts.sent_at,
        touched_carts.touched_at
    from keyed_orders
    inner join touched_carts
        on keyed_orders.org_id = touched_carts.org_id
        and keyed_orders.cart_id = touched_carts.cart_id

    union

    select
        keyed_orders.org_id,
        keyed_orders.order_id,
        keyed_orders.cart_id as order_cart_id,
        keyed_orders.order_total,
        keyed_orders.currency,
        keyed_orders.ordered_at,
        touched_carts.message_id,
        touched_carts.cart_id as touched_cart_id,
        touched_carts.campaign_id,
        touched_carts.channel,
        touched_carts.variant,
        touched_carts.step_index,
        touched_carts.touch_type,
        touched_carts.sent_at,
        touched_carts.touched_at
    from keyed_orders
    inner join touched_carts
        on keyed_orders.org_id = touched_carts.org_id
        and keyed_orders.customer_key = touched_carts.customer_key
        and touched_carts.abandoned_at <= keyed_orders.ordered_at

),

final as (

    select
        ---------- ids
        candidates.org_id,
        candidates.order_id,
        candidates.message_id,
        candidates.order_cart_id,
        candidates.touched_cart_id,
        candidates.campaign_id,

        ---------- strings
        candidates.channel,
        candidates.variant,
        candidates.touch_type,
        candidates.currency,

        ---------- numerics
        candidates.step_index,
        candidates.order_total,
        extract(epoch from candidates.ordered_at - candidates.touched_at)::double precision
            as seconds_from_touch_to_order,
        org_settings.half_life_seconds,

        ---------- timestamps
        candidates.sent_at,
        candidates.touched_at,
        candidates.ordered_at

    from candidates
    inner join org_settings
        on candidates.org_id = org_settings.org_id
    where candidates.touched_at <= candidates.ordered_at
        and extract(epoch from candidates.ordered_at - candidates.touched_at)
        <= {{ channel_window('candidates.channel', 'org_settings') }}

)

select * from final
{% endmacro %}

{#- Its rows: the view itself when nothing is filtered (so the models reading it keep that
    dependency, and their unit tests its fixture), else the SQL with the filters. Parsing
    renders the SQL too, so dbt records the tables a filtered build reads. -#}
{% macro int_orders_joined_to_touches_sql(orders_where='true', carts_where='true', messages_where='true', inline=false) %}
    {%- if not execute -%}{%- set _ = int_orders_joined_to_touches_body(orders_where, carts_where, messages_where) -%}{%- endif -%}
    {%- if inline or orders_where != 'true' or carts_where != 'true' or messages_where != 'true' -%}
    {{ int_orders_joined_to_touches_body(orders_where, carts_where, messages_where) }}
    {%- else -%}
    select * from {{ ref('int_orders_joined_to_touches') }}
    {%- endif -%}
{% endmacro %}
