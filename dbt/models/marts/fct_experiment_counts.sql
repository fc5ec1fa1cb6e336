-- Sufficient statistics per campaign, step (1-based), variant and metric for the statistics
-- engine: n, sum and sum of squares (mean and variance follow). One observation per message
-- sent, or held out (variant 'holdout'). Metrics: clicked (0/1), converted (0/1: an order of
-- the cart or its customer within the longest window after abandonment), revenue (that
-- order's total when it is in the reporting currency, else 0; never mixed currencies).

with

-- The day sums (fct_experiment_counts_daily) add up to the all-time sums.
sums as (

    select
        org_id,
        campaign_id,
        step_index,
        variant,
        sum(n)::bigint as n,
        max(reporting_currency) as reporting_currency,
        sum(clicked_sum) as clicked_sum,
        sum(clicked_squares) as clicked_squares,
        sum(converted_sum) as converted_sum,
        sum(converted_squares) as converted_squares,
        sum(revenue_sum) as revenue_sum,
        sum(revenue_squares) as revenue_squares
    from {{ ref('fct_experiment_counts_daily') }}
    group by org_id, campaign_id, step_index, variant

),

final as (

    select
        ---------- ids
        sums.org_id,
        sums.campaign_id,

        ---------- strings
        sums.variant,
        metrics.metric,
        metrics.currency,

        ---------- numerics
        sums.step_index,
        sums.n,
        metrics.sum,
        metrics.sum_squares

    from sums
    cross join lateral (
        values
            ('clicked', null::text, sums.clicked_sum, sums.clicked_squares),
            ('converted', null::text, sums.converted_sum, sums.converted_squares),
            ('revenue', sums.reporting_currency, sums.revenue_sum, sums.revenue_squares)
    ) as metrics (metric, currency, sum, sum_squares)

)

select
    *,
    {{ built_at() }} as built_at
from final
