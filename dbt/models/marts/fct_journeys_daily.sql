-- fct_journeys counted per UTC day of abandonment (day_start), path and currency: carts,
-- recovered carts and the revenue of the recovered ones. The analytics API reads whole days
-- here and the partial edge days of a period from fct_journeys
-- (cartrecovery/analytics/buckets.py).


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

journeys as (

    select * from {{ ref('fct_journeys') }}
    where {{ if_changed_day('cart', 'abandoned_at') }}

),

final as (

    select
        ---------- ids
        org_id,

        ---------- strings
        path,
        currency,

        ---------- numerics
        count(*) as carts,
        count(*) filter (where is_recovered) as recovered,
        -- null when no cart of the group was recovered, as the API's sum over carts is.
        sum(revenue) filter (where is_recovered) as revenue,
        -- (the path's touchpoints and the group's first and last abandonment: what
        -- fct_journey_paths sums these days into)
        min(touchpoints) as touchpoints,

        ---------- timestamps
        date_trunc('day', abandoned_at, 'UTC') as day_start,
        min(abandoned_at) as first_abandoned_at,
        max(abandoned_at) as last_abandoned_at

    from journeys
    group by org_id, path, currency, date_trunc('day', abandoned_at, 'UTC')

)

select
    *,
    {{ built_at() }} as built_at
from final
