-- fct_attribution summed per UTC day of the order (day_start), model, channel, campaign,
-- step (1-based), variant and currency: credited recoveries (sum of credits) and revenue.
-- The analytics API reads whole days of a period here and its two partial edge days from
-- fct_attribution (cartrecovery/analytics/buckets.py), so a 30-day answer sums about a
-- thousand rows instead of every credited touch; the figures are the same sums.


-- Incremental (docs/analytics.md): a build recomputes the days of what changed.
{{
    config(
        materialized='incremental',
        unique_key=['org_id', 'day_start'],
        incremental_strategy='delete+insert',
        on_schema_change='ignore',
        pre_hook="{{ delete_changed_days('order', 'day_start') }}",
        indexes=[{'columns': ['org_id', 'model', 'day_start']}],
    )
}}

with

attribution as (

    select * from {{ ref('fct_attribution') }}
    where credit > 0
        and {{ if_changed_day('order', 'ordered_at') }}

),

final as (

    select
        ---------- ids
        org_id,
        campaign_id,

        ---------- strings
        model,
        channel,
        variant,
        currency,

        ---------- numerics
        step_index,
        count(*) as touches,
        sum(credit) as credit,
        sum(revenue) as revenue,

        ---------- timestamps
        date_trunc('day', ordered_at, 'UTC') as day_start

    from attribution
    group by
        org_id,
        campaign_id,
        model,
        channel,
        variant,
        currency,
        step_index,
        date_trunc('day', ordered_at, 'UTC')

)

select
    *,
    {{ built_at() }} as built_at
from final
