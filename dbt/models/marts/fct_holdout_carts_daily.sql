-- fct_holdout_carts summed per UTC day of abandonment (day_start), campaign and lift group:
-- carts, conversions, revenue and the sum of squared revenue (for the Welch interval), in
-- the reporting currency the build used. The analytics API reads whole days here and the
-- partial edge days of a period from fct_holdout_carts (cartrecovery/analytics/buckets.py).


-- Incremental (docs/analytics.md): a build recomputes the days of what changed.
{{
    config(
        materialized='incremental',
        unique_key=['org_id', 'day_start'],
        incremental_strategy='delete+insert',
        on_schema_change='ignore',
        pre_hook="{{ delete_changed_days('cart', 'day_start') }}",
        indexes=[{'columns': ['org_id', 'day_start']}],
    )
}}

with

holdout_carts as (

    select * from {{ ref('fct_holdout_carts') }}
    where {{ if_changed_day('cart', 'abandoned_at') }}

),

final as (

    select
        ---------- ids
        org_id,
        campaign_id,

        ---------- strings
        lift_group,
        reporting_currency,

        ---------- numerics
        count(*) as carts,
        count(*) filter (where is_converted) as conversions,
        coalesce(sum(revenue), 0) as revenue,
        coalesce(sum(revenue * revenue), 0) as revenue_squares,

        ---------- timestamps
        date_trunc('day', abandoned_at, 'UTC') as day_start

    from holdout_carts
    group by
        org_id,
        campaign_id,
        lift_group,
        reporting_currency,
        date_trunc('day', abandoned_at, 'UTC')

)

select
    *,
    {{ built_at() }} as built_at
from final
