-- One row per recovered order (an order with at least one eligible touch): the order's
-- revenue in its own currency, and the touch the default last_touch model credits (the
-- message, its campaign, channel and 1-based step). Per-model credit is in fct_attribution.

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

attribution as (

    select * from {{ ref('fct_attribution') }}
    where model = 'last_touch'
        and credit = 1
        and {{ if_changed_order() }}

),

campaigns as (

    select * from {{ ref('stg_app__campaigns') }}

),

final as (

    select
        ---------- ids
        attribution.org_id,
        attribution.order_id,
        coalesce(attribution.order_cart_id, attribution.touched_cart_id) as cart_id,
        attribution.message_id,
        attribution.campaign_id,

        ---------- strings
        campaigns.campaign_name,
        attribution.channel,
        attribution.variant,
        attribution.currency,

        ---------- numerics
        attribution.step_index,
        attribution.touch_count,
        attribution.order_total as revenue,
        round(
            extract(epoch from attribution.ordered_at - attribution.sent_at) / 3600.0, 2
        ) as hours_from_message_to_order,

        ---------- booleans
        attribution.is_reporting_currency,

        ---------- timestamps
        attribution.sent_at as message_sent_at,
        attribution.touched_at as clicked_at,
        attribution.ordered_at,
        attribution.ordered_at as recovered_at

    from attribution
    left join campaigns
        on attribution.org_id = campaigns.org_id
        and attribution.campaign_id = campaigns.campaign_id

)

select
    *,
    {{ built_at() }} as built_at
from final
