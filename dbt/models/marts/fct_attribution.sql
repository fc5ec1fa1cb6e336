-- One row per (order, eligible touch, attribution model): the touch's credit for the order
-- and the share of the order's revenue it carries, in the order's own currency.
-- Models (docs/analytics.md): last_touch (the latest touch), first_touch (the earliest),
-- linear (1/k each), time_decay (2^-(order - touch)/half_life, normalised). Credits sum to 1
-- per order and model. Ties on the touch time go to the lowest message id.

-- The analytics API filters on these (cartrecovery/analytics/).

-- Incremental (docs/analytics.md): a build rewrites every row of the orders in int_changes.
{{
    config(
        materialized='incremental',
        unique_key=['org_id', 'order_id'],
        incremental_strategy='delete+insert',
        on_schema_change='ignore',
        pre_hook="{{ delete_changed('order') }}",
        indexes=[{'columns': ['org_id', 'model', 'ordered_at']}, {'columns': ['org_id', 'order_id']}],
    )
}}

with

order_touches as (

    {{ int_orders_joined_to_touches_sql(orders_where=if_changed_order(), carts_where=if_changed_cart(), messages_where=if_changed_message()) }}

),

org_settings as (

    select * from {{ ref('int_org_attribution_settings') }}

),

ranked as (

    select
        *,
        count(*) over (partition by org_id, order_id) as touch_count,
        row_number() over (
            partition by org_id, order_id order by touched_at, message_id
        ) as touch_position,
        row_number() over (
            partition by org_id, order_id order by touched_at desc, message_id
        ) as reverse_touch_position,
        power(2::double precision, -seconds_from_touch_to_order / half_life_seconds)
            as decay_weight
    from order_touches

),

weighted as (

    select
        *,
        decay_weight / sum(decay_weight) over (partition by org_id, order_id)
            as decay_share
    from ranked

),

models as (

    select * from (
        values ('last_touch'), ('first_touch'), ('linear'), ('time_decay')
    ) as attribution_models (model)

),

credited as (

    select
        weighted.*,
        models.model,
        case models.model
            when 'last_touch'
                then case when weighted.reverse_touch_position = 1 then 1.0 else 0.0 end
            when 'first_touch'
                then case when weighted.touch_position = 1 then 1.0 else 0.0 end
            when 'linear' then 1.0 / weighted.touch_count
            when 'time_decay' then weighted.decay_share
        end::double precision as credit
    from weighted
    cross join models

),

final as (

    select
        ---------- ids
        credited.org_id,
        credited.order_id,
        credited.message_id,
        credited.order_cart_id,
        credited.touched_cart_id,
        credited.campaign_id,

        ---------- strings
        credited.model,
        credited.channel,
        credited.variant,
        credited.touch_type,
        credited.currency,

        ---------- numerics
        credited.step_index,
        credited.touch_position,
        credited.touch_count,
        credited.credit,
        credited.order_total,
        round(credited.order_total * credited.credit::numeric, 6) as revenue,

        ---------- booleans
        credited.currency is not distinct from org_settings.reporting_currency
            as is_reporting_currency,

        ---------- timestamps
        credited.sent_at,
        credited.touched_at,
        credited.ordered_at

    from credited
    inner join org_settings
        on credited.org_id = org_settings.org_id

)

select
    *,
    {{ built_at() }} as built_at
from final
