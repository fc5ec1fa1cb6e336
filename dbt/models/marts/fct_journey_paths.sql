-- Path counts for a Sankey: one row per org and path (fct_journeys.path) with the number of
-- abandonments that took it, how many were recovered, and their revenue per currency
-- ({"EUR": 12.5, "USD": 40}); amounts of different currencies are never added.

-- Summed from fct_journeys_daily (a few rows per day and path) rather than from every
-- abandonment in fct_journeys: this table is rebuilt whole by every build, incremental too.

with

daily as (

    select * from {{ ref('fct_journeys_daily') }}

),

revenue_per_currency as (

    select
        org_id,
        path,
        currency,
        sum(revenue) as revenue
    from daily
    where recovered > 0 and currency is not null
    group by org_id, path, currency

),

revenue_by_path as (

    select
        org_id,
        path,
        jsonb_object_agg(currency, revenue order by currency) as revenue_by_currency
    from revenue_per_currency
    group by org_id, path

),

counts as (

    select
        org_id,
        path,
        min(touchpoints) as touchpoints,
        sum(carts)::bigint as carts,
        sum(recovered)::bigint as recovered,
        min(first_abandoned_at) as first_abandoned_at,
        max(last_abandoned_at) as last_abandoned_at
    from daily
    group by org_id, path

),

final as (

    select
        ---------- ids
        counts.org_id,

        ---------- strings
        counts.path,
        counts.touchpoints,

        ---------- numerics
        counts.carts,
        counts.recovered,
        coalesce(revenue_by_path.revenue_by_currency, '{}'::jsonb) as revenue_by_currency,

        ---------- timestamps
        counts.first_abandoned_at,
        counts.last_abandoned_at

    from counts
    left join revenue_by_path
        on counts.org_id = revenue_by_path.org_id
        and counts.path = revenue_by_path.path

)

select
    *,
    {{ built_at() }} as built_at
from final
