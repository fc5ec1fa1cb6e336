-- One row per org: the attribution settings in force, defaults applied (see
-- docs/analytics.md). Marts read this, so a settings change is followed on the next build.

with

orgs as (

    select * from {{ ref('stg_app__orgs') }}

),

orders as (

    select * from {{ ref('stg_app__orders') }}

),

-- The default reporting currency: the currency of most of the org's orders, ties broken
-- alphabetically (cartrecovery.org_settings.majority_currency applies the same rule).
currency_ranks as (

    select
        org_id,
        currency,
        row_number() over (
            partition by org_id order by count(*) desc, currency
        ) as currency_rank
    from orders
    where currency is not null
    group by org_id, currency

),

final as (

    select
        ---------- ids
        orgs.org_id,

        ---------- strings
        coalesce(orgs.attribution_touch, '{{ var("attribution_touch_default") }}')
            as attribution_touch,
        coalesce(orgs.reporting_currency, currency_ranks.currency) as reporting_currency,

        ---------- numerics
        orgs.attribution_window_seconds as default_window_seconds,
        {%- for channel, seconds in var('attribution_window_defaults').items() %}
        coalesce(orgs.attribution_window_{{ channel }}_seconds, {{ seconds }})
            as window_{{ channel }}_seconds,
        {%- endfor %}
        coalesce(
            orgs.attribution_half_life_seconds, {{ var('attribution_half_life_default') }}
        ) as half_life_seconds,
        greatest(
            orgs.attribution_window_seconds
            {%- for channel, seconds in var('attribution_window_defaults').items() %},
            coalesce(orgs.attribution_window_{{ channel }}_seconds, {{ seconds }})
            {%- endfor %}
        ) as longest_window_seconds

    from orgs
    left join currency_ranks
        on orgs.org_id = currency_ranks.org_id
        and currency_ranks.currency_rank = 1

)

select * from final
