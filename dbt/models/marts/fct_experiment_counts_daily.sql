-- fct_experiment_counts' sums per UTC day of the message (its send time, else its due time):
-- one row per day, campaign, step (1-based) and variant ('holdout' for held-out messages)
-- with n and the sums and squares of clicked, converted and revenue (revenue only of
-- orders in the reporting currency). fct_experiment_counts adds the days up.
-- Incremental (docs/analytics.md): a build recomputes the days of the changed carts'
-- messages (a cart's conversion changes its messages' counts, whatever their day).

{{
    config(
        materialized='incremental',
        unique_key=['org_id', 'day_start'],
        incremental_strategy='delete+insert',
        on_schema_change='ignore',
        pre_hook="{{ delete_changed_days('message', 'day_start') }}",
        indexes=[{'columns': ['org_id', 'day_start']}],
    )
}}

with

messages as (

    select * from {{ ref('fct_messages') }}
    where (is_sent or is_held_out)
        and {{ if_changed_day('message', 'coalesce(sent_at, due_at)') }}

),

observations as (

    select
        messages.org_id,
        messages.campaign_id,
        messages.step_index,
        case when messages.is_held_out then 'holdout' else messages.variant end as variant,
        date_trunc('day', coalesce(messages.sent_at, messages.due_at), 'UTC') as day_start,
        abandonments.reporting_currency,
        case when messages.is_clicked then 1 else 0 end as clicked,
        case when abandonments.is_converted then 1 else 0 end as converted,
        case
            when abandonments.order_currency = abandonments.reporting_currency
                then abandonments.order_total
            else 0
        end as revenue
    from messages
    -- The cart's conversion as fct_holdout_carts holds it (the same in each of its rows, one
    -- per campaign; it has one for every cart with a sent or held-out message), looked up
    -- message by message.
    left join lateral (
        select is_converted, order_currency, order_total, reporting_currency
        from {{ ref('fct_holdout_carts') }} as holdout_carts
        where holdout_carts.org_id = messages.org_id
            and holdout_carts.cart_id = messages.cart_id
        limit 1
    ) as abandonments on true

),

final as (

    select
        ---------- ids
        org_id,
        campaign_id,

        ---------- strings
        variant,
        max(reporting_currency) as reporting_currency,

        ---------- numerics
        step_index,
        count(*) as n,
        sum(clicked::numeric) as clicked_sum,
        sum((clicked * clicked)::numeric) as clicked_squares,
        sum(converted::numeric) as converted_sum,
        sum((converted * converted)::numeric) as converted_squares,
        sum(coalesce(revenue, 0)) as revenue_sum,
        sum(coalesce(revenue, 0) * coalesce(revenue, 0)) as revenue_squares,

        ---------- timestamps
        day_start

    from observations
    group by org_id, campaign_id, step_index, variant, day_start

)

select
    *,
    {{ built_at() }} as built_at
from final
