-- One row per touch (a message its recipient clicked, or opened under open_or_click), with
-- the number of orders it is an eligible touch for.

with

touches as (

    select * from {{ ref('int_touches') }}

),

order_touches as (

    select * from {{ ref('int_orders_joined_to_touches') }}

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
