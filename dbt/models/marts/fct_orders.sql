-- One row per order: its total in its own currency, how many eligible touches it has, and
-- whether it is a recovery (at least one eligible touch) or a conversion without a touch.

-- Incremental (docs/analytics.md): a build rewrites the orders in int_changes.
{{
    config(
        materialized='incremental',
        unique_key=['org_id', 'order_id'],
        incremental_strategy='delete+insert',
        on_schema_change='ignore',
        indexes=[{'columns': ['org_id', 'order_id']}],
        pre_hook="{{ delete_changed('order') }}",
    )
}}

with

orders as (

    select * from {{ ref('stg_app__orders') }}
    where {{ if_changed_order() }}

),

carts as (

    select * from {{ ref('stg_app__carts') }}

),

-- One fct_attribution row per eligible touch and model: last_touch counts each touch once.
order_touches as (

    select org_id, order_id, touched_at from {{ ref('fct_attribution') }}
    where model = 'last_touch'
        and {{ if_changed_order() }}

),

org_settings as (

    select * from {{ ref('int_org_attribution_settings') }}

),

touch_counts as (

    select
        org_id,
        order_id,
        count(*) as eligible_touch_count,
        max(touched_at) as last_touched_at
    from order_touches
    group by org_id, order_id

),

final as (

    select
        ---------- ids
        orders.org_id,
        orders.order_id,
        orders.cart_id,
        orders.customer_id,
        orders.order_external_id,

        ---------- strings
        orders.platform,
        orders.currency,
        case
            when touch_counts.order_id is not null then 'recovered'
            else 'converted_without_touch'
        end as outcome,

        ---------- numerics
        orders.order_total,
        coalesce(touch_counts.eligible_touch_count, 0) as eligible_touch_count,

        ---------- booleans
        touch_counts.order_id is not null as is_recovery,
        carts.abandoned_at is not null and carts.abandoned_at <= orders.ordered_at
            as is_of_abandoned_cart,
        orders.currency is not distinct from org_settings.reporting_currency
            as is_reporting_currency,

        ---------- timestamps
        orders.ordered_at,
        touch_counts.last_touched_at

    from orders
    left join carts
        on orders.org_id = carts.org_id
        and orders.cart_id = carts.cart_id
    left join touch_counts
        on orders.org_id = touch_counts.org_id
        and orders.order_id = touch_counts.order_id
    left join org_settings
        on orders.org_id = org_settings.org_id

)

select
    *,
    {{ built_at() }} as built_at
from final
