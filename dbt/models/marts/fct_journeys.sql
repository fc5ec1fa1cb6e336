-- One row per abandonment: its touchpoints in order (each message sent, as
-- "<channel>:step<N>", followed by ":click" when it was clicked; "held_out" for a holdout
-- cart) and the outcome (recovered, converted, open, lost) as the path's last element.

-- The analytics API filters on these (cartrecovery/analytics/).

-- Incremental (docs/analytics.md): a build rewrites the carts in int_changes.
{{
    config(
        materialized='incremental',
        unique_key=['org_id', 'cart_id'],
        incremental_strategy='delete+insert',
        on_schema_change='ignore',
        pre_hook="{{ delete_changed('cart') }}",
        indexes=[{'columns': ['org_id', 'abandoned_at']}, {'columns': ['org_id', 'cart_id']}],
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

orders as (

    select * from {{ ref('fct_orders') }}

),

touchpoints as (

    select
        org_id,
        cart_id,
        array_agg(
            case
                when is_held_out then 'held_out'
                else channel || ':step' || step_index || case when is_clicked then ':click' else '' end
            end
            order by coalesce(sent_at, due_at), step_index, message_id
        ) as touchpoints,
        count(*) filter (where is_sent) as messages_sent,
        count(*) filter (where is_clicked) as messages_clicked,
        bool_or(is_held_out) as is_held_out
    from messages
    group by org_id, cart_id

),

outcomes as (

    select
        abandonments.*,
        case
            when orders.is_recovery then 'recovered'
            when abandonments.is_converted then 'converted'
            when abandonments.is_open then 'open'
            else 'lost'
        end as outcome
    from abandonments
    left join orders
        on abandonments.org_id = orders.org_id
        and abandonments.order_id = orders.order_id

),

final as (

    select
        ---------- ids
        outcomes.org_id,
        outcomes.cart_id,
        outcomes.order_id,

        ---------- strings
        outcomes.outcome,
        coalesce(touchpoints.touchpoints, array[]::text[]) as touchpoints,
        array_to_string(
            coalesce(touchpoints.touchpoints, array[]::text[]) || outcomes.outcome, ' > '
        ) as path,
        outcomes.order_currency as currency,

        ---------- numerics
        coalesce(touchpoints.messages_sent, 0) as messages_sent,
        coalesce(touchpoints.messages_clicked, 0) as messages_clicked,
        outcomes.order_total as revenue,

        ---------- booleans
        outcomes.outcome = 'recovered' as is_recovered,
        coalesce(touchpoints.is_held_out, false) as is_held_out,

        ---------- timestamps
        outcomes.abandoned_at,
        outcomes.ordered_at

    from outcomes
    left join touchpoints
        on outcomes.org_id = touchpoints.org_id
        and outcomes.cart_id = touchpoints.cart_id

)

select
    *,
    {{ built_at() }} as built_at
from final
