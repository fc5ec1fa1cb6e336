-- One row per (campaign, abandoned cart) that was messaged or held out: its lift group and
-- its conversion (an order of the cart or its customer within the org's longest window after
-- abandonment, touched or not). fct_holdout_lift aggregates it; the API filters it by
-- abandoned_at for a period. A cart with a held_out row is held out for that campaign even if
-- another of its rows was sent by mistake: treated carts must not leak into the control.

-- The analytics API filters on these (cartrecovery/analytics/).

-- Incremental (docs/analytics.md): a build rewrites the carts in int_changes.
{{
    config(
        materialized='incremental',
        unique_key=['org_id', 'cart_id'],
        incremental_strategy='delete+insert',
        on_schema_change='ignore',
        pre_hook="{{ delete_changed('cart') }}",
        indexes=[
            {'columns': ['org_id', 'abandoned_at']},
            {'columns': ['org_id', 'campaign_id', 'abandoned_at']},
            {'columns': ['org_id', 'cart_id']},
        ],
    )
}}

with

abandonments as (

    {{ int_abandonments_joined_to_orders_sql(carts_where=if_changed_cart()) }}

),

messages as (

    select * from {{ ref('fct_messages') }}
    where (is_sent or is_held_out)
        and {{ if_changed_cart() }}

),

cart_groups as (

    select
        org_id,
        campaign_id,
        cart_id,
        case when bool_or(is_held_out) then 'held_out' else 'messaged' end as lift_group
    from messages
    group by org_id, campaign_id, cart_id

),

final as (

    select
        ---------- ids
        cart_groups.org_id,
        cart_groups.campaign_id,
        cart_groups.cart_id,
        abandonments.order_id,

        ---------- strings
        cart_groups.lift_group,
        abandonments.order_currency,
        abandonments.reporting_currency,

        ---------- numerics
        abandonments.order_total,
        -- Revenue counts only orders in the reporting currency (others count 0), so no
        -- amounts of different currencies are ever added.
        case
            when abandonments.order_currency = abandonments.reporting_currency
                then abandonments.order_total
            else 0
        end as revenue,

        ---------- booleans
        abandonments.is_converted,

        ---------- timestamps
        abandonments.abandoned_at,
        abandonments.ordered_at

    from cart_groups
    inner join abandonments
        on cart_groups.org_id = abandonments.org_id
        and cart_groups.cart_id = abandonments.cart_id

)

select
    *,
    {{ built_at() }} as built_at
from final
