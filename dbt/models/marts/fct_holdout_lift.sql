-- Lift of each campaign, and of the org (scope = 'org', campaign_id NULL): messaged carts
-- against held-out carts (outbox status held_out: enrolled and tracked, never messaged).
-- Recovery rate = carts with an order within the longest window after abandonment, touched
-- or not. Revenue counts only orders in the org's reporting currency (other orders count 0),
-- so no amounts of different currencies are added. Intervals are 95%: normal for the rate
-- difference, Welch for the revenue-per-cart difference. Below 30 held-out carts the
-- estimate is flagged not meaningful. Works, with zero held-out carts, before any exist.
-- All time; for a period, aggregate fct_holdout_carts (or its days) the same way.

with

-- The day-grain sums of fct_holdout_carts (per campaign, group and UTC day of abandonment)
-- add up to the same all-time sums, from a few rows per day instead of every cart.
day_sums as (

    select
        org_id,
        campaign_id,
        lift_group,
        reporting_currency,
        carts,
        conversions,
        revenue,
        revenue_squares
    from {{ ref('fct_holdout_carts_daily') }}

),

scoped as (

    select
        org_id, 'campaign' as scope, campaign_id, lift_group, reporting_currency, carts,
        conversions, revenue, revenue_squares
    from day_sums
    union all
    select
        org_id, 'org' as scope, null::uuid as campaign_id, lift_group, reporting_currency,
        carts, conversions, revenue, revenue_squares
    from day_sums

),

group_sums as (

    select
        org_id,
        scope,
        campaign_id,
        max(reporting_currency) as reporting_currency,
        coalesce(sum(carts) filter (where lift_group = 'messaged'), 0)::bigint
            as messaged_carts,
        coalesce(sum(carts) filter (where lift_group = 'held_out'), 0)::bigint
            as held_out_carts,
        coalesce(sum(conversions) filter (where lift_group = 'messaged'), 0)::bigint
            as messaged_recoveries,
        coalesce(sum(conversions) filter (where lift_group = 'held_out'), 0)::bigint
            as held_out_recoveries,
        coalesce(sum(revenue) filter (where lift_group = 'messaged'), 0) as messaged_revenue,
        coalesce(sum(revenue) filter (where lift_group = 'held_out'), 0) as held_out_revenue,
        coalesce(sum(revenue_squares) filter (where lift_group = 'messaged'), 0)
            as messaged_revenue_squares,
        coalesce(sum(revenue_squares) filter (where lift_group = 'held_out'), 0)
            as held_out_revenue_squares
    from scoped
    group by org_id, scope, campaign_id

),

rates as (

    select
        *,
        messaged_recoveries::double precision / nullif(messaged_carts, 0) as messaged_rate,
        held_out_recoveries::double precision / nullif(held_out_carts, 0) as held_out_rate,
        messaged_revenue::double precision / nullif(messaged_carts, 0)
            as messaged_revenue_per_cart,
        held_out_revenue::double precision / nullif(held_out_carts, 0)
            as held_out_revenue_per_cart,
        -- Sample variances of revenue per cart (n - 1).
        (messaged_revenue_squares - messaged_revenue * messaged_revenue / nullif(messaged_carts, 0))::double precision
        / nullif(messaged_carts - 1, 0) as messaged_revenue_variance,
        (held_out_revenue_squares - held_out_revenue * held_out_revenue / nullif(held_out_carts, 0))::double precision
        / nullif(held_out_carts - 1, 0) as held_out_revenue_variance
    from group_sums

),

errors as (

    select
        *,
        messaged_rate - held_out_rate as rate_lift,
        sqrt(
            messaged_rate * (1 - messaged_rate) / nullif(messaged_carts, 0)
            + held_out_rate * (1 - held_out_rate) / nullif(held_out_carts, 0)
        ) as rate_lift_standard_error,
        messaged_revenue_per_cart - held_out_revenue_per_cart as revenue_per_cart_lift,
        messaged_revenue_variance / nullif(messaged_carts, 0) as messaged_mean_variance,
        held_out_revenue_variance / nullif(held_out_carts, 0) as held_out_mean_variance
    from rates

),

welch as (

    select
        *,
        sqrt(messaged_mean_variance + held_out_mean_variance)
            as revenue_per_cart_lift_standard_error,
        -- Welch-Satterthwaite degrees of freedom.
        power(messaged_mean_variance + held_out_mean_variance, 2)
        / nullif(
            power(messaged_mean_variance, 2) / nullif(messaged_carts - 1, 0)
            + power(held_out_mean_variance, 2) / nullif(held_out_carts - 1, 0),
            0
        ) as welch_degrees_of_freedom
    from errors

),

final as (

    select
        ---------- ids
        org_id,
        campaign_id,

        ---------- strings
        scope,
        reporting_currency,

        ---------- numerics
        messaged_carts,
        held_out_carts,
        messaged_recoveries,
        held_out_recoveries,
        messaged_revenue,
        held_out_revenue,
        messaged_revenue_squares,
        held_out_revenue_squares,
        messaged_rate,
        held_out_rate,
        rate_lift,
        rate_lift_standard_error,
        rate_lift - 1.959964 * rate_lift_standard_error as rate_lift_low,
        rate_lift + 1.959964 * rate_lift_standard_error as rate_lift_high,
        rate_lift * messaged_carts as incremental_recoveries,
        (rate_lift - 1.959964 * rate_lift_standard_error) * messaged_carts
            as incremental_recoveries_low,
        (rate_lift + 1.959964 * rate_lift_standard_error) * messaged_carts
            as incremental_recoveries_high,
        messaged_revenue_per_cart,
        held_out_revenue_per_cart,
        revenue_per_cart_lift,
        revenue_per_cart_lift_standard_error,
        welch_degrees_of_freedom,
        revenue_per_cart_lift * messaged_carts as incremental_revenue,
        (
            revenue_per_cart_lift
            - {{ t_quantile_975('welch_degrees_of_freedom') }} * revenue_per_cart_lift_standard_error
        ) * messaged_carts as incremental_revenue_low,
        (
            revenue_per_cart_lift
            + {{ t_quantile_975('welch_degrees_of_freedom') }} * revenue_per_cart_lift_standard_error
        ) * messaged_carts as incremental_revenue_high,

        ---------- booleans
        held_out_carts >= 30 as is_meaningful

    from welch

)

select
    *,
    {{ built_at() }} as built_at
from final
