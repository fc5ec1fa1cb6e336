-- Sufficient statistics per campaign, step (1-based), variant and metric for the statistics
-- engine: n, sum and sum of squares (mean and variance follow). One observation per message
-- sent, or held out (variant 'holdout'). Metrics: clicked (0/1), converted (0/1: an order of
-- the cart or its customer within the longest window after abandonment), revenue (that
-- order's total when it is in the reporting currency, else 0; never mixed currencies).

with

messages as (

    select * from {{ ref('fct_messages') }}
    where is_sent or is_held_out

),

-- Each abandoned cart's conversion as fct_holdout_carts holds it (the same for every
-- campaign of the cart; it has a row for every cart with a sent or held-out message).
abandonments as (

    select distinct on (org_id, cart_id)
        org_id,
        cart_id,
        is_converted,
        order_currency,
        order_total,
        reporting_currency
    from {{ ref('fct_holdout_carts') }}
    order by org_id, cart_id

),

observations as (

    select
        messages.org_id,
        messages.campaign_id,
        messages.step_index,
        case when messages.is_held_out then 'holdout' else messages.variant end as variant,
        abandonments.reporting_currency,
        case when messages.is_clicked then 1 else 0 end as clicked,
        case when abandonments.is_converted then 1 else 0 end as converted,
        case
            when abandonments.order_currency = abandonments.reporting_currency
                then abandonments.order_total
            else 0
        end as revenue
    from messages
    left join abandonments
        on messages.org_id = abandonments.org_id
        and messages.cart_id = abandonments.cart_id

),

-- One pass over the observations for all three metrics, then one row per metric.
sums as (

    select
        org_id,
        campaign_id,
        step_index,
        variant,
        count(*) as n,
        max(reporting_currency) as reporting_currency,
        sum(clicked::numeric) as clicked_sum,
        sum((clicked * clicked)::numeric) as clicked_squares,
        sum(converted::numeric) as converted_sum,
        sum((converted * converted)::numeric) as converted_squares,
        sum(coalesce(revenue, 0)) as revenue_sum,
        sum(coalesce(revenue, 0) * coalesce(revenue, 0)) as revenue_squares
    from observations
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
