-- One row per touch (a message its recipient clicked, or opened under open_or_click), with
-- the number of orders it is an eligible touch for.

-- Incremental (docs/analytics.md): a build rewrites the touches of the carts in
-- int_changes.
{{
    config(
        materialized='incremental',
        unique_key=['org_id', 'message_id'],
        incremental_strategy='delete+insert',
        on_schema_change='ignore',
        indexes=[{'columns': ['org_id', 'cart_id']}],
        pre_hook="{{ delete_changed('cart') }}",
    )
}}

with

touches as (

    {{ int_touches_sql(carts_where=if_changed_cart(), messages_where=if_changed_message()) }}

),

-- One fct_attribution row per eligible (order, touch) and model: last_touch counts each
-- pair once. Every order's rows are current after its build, so any touch's count is too.
order_touches as (

    select org_id, message_id from {{ ref('fct_attribution') }}
    where model = 'last_touch'
        and {{ if_changed_cart('', 'touched_cart_id') }}

),

orders_per_touch as (

    select
        org_id,
        message_id,
        count(*) as eligible_order_count
    from order_touches
    group by org_id, message_id

),

final as (

    select
        ---------- ids
        touches.org_id,
        touches.message_id,
        touches.cart_id,
        touches.campaign_id,

        ---------- strings
        touches.channel,
        touches.variant,
        touches.touch_type,

        ---------- numerics
        touches.step_index,
        coalesce(orders_per_touch.eligible_order_count, 0) as eligible_order_count,

        ---------- booleans
        orders_per_touch.message_id is not null as is_credited,

        ---------- timestamps
        touches.sent_at,
        touches.touched_at

    from touches
    left join orders_per_touch
        on touches.org_id = orders_per_touch.org_id
        and touches.message_id = orders_per_touch.message_id

)

select
    *,
    {{ built_at() }} as built_at
from final
