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

metrics as (

    select org_id, campaign_id, step_index, variant, 'clicked' as metric,
        null::text as currency, clicked::numeric as value
    from observations
    union all
    select org_id, campaign_id, step_index, variant, 'converted' as metric,
        null::text as currency, converted::numeric as value
    from observations
    union all
    select org_id, campaign_id, step_index, variant, 'revenue' as metric,
        reporting_currency as currency, coalesce(revenue, 0) as value
    from observations

),

final as (

    select
        ---------- ids
        org_id,
        campaign_id,

        ---------- strings
        variant,
        metric,
        max(currency) as currency,

        ---------- numerics
        step_index,
        count(*) as n,
        sum(value) as sum,
        sum(value * value) as sum_squares

    from metrics
    group by org_id, campaign_id, step_index, variant, metric

)

select
    *,
    {{ built_at() }} as built_at
from final
