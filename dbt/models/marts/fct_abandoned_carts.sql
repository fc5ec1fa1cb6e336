-- Carts that were ever marked abandoned, how long it took, and what happened next.
-- outcome is evaluated when the model is built:
--   recovered  bought with an eligible touch (fct_recoveries, docs/analytics.md)
--   converted  bought without an attributed message
--   open       not bought, still within the org's attribution window
--   lost       not bought and the attribution window has passed

-- Incremental (docs/analytics.md): a build rewrites the carts in int_changes.
{{
    config(
        materialized='incremental',
        unique_key=['org_id', 'cart_id'],
        incremental_strategy='delete+insert',
        on_schema_change='ignore',
        indexes=[{'columns': ['org_id', 'cart_id']}],
        pre_hook="{{ delete_changed('cart') }}",
    )
}}

with

carts as (

    select * from {{ ref('fct_carts') }}
    where is_abandoned
        and {{ if_changed_cart() }}

),

orgs as (

    select * from {{ ref('stg_app__orgs') }}

),

final as (

    select
        ---------- ids
        carts.cart_id,
        carts.org_id,
        carts.order_id,

        ---------- strings
        carts.platform,
        carts.email,
        carts.currency,
        carts.status,
        case
            when carts.is_recovered then 'recovered'
            when carts.is_converted then 'converted'
            when carts.abandoned_at
                + make_interval(secs => coalesce(orgs.attribution_window_seconds, 432000))
                > now()
                then 'open'
            else 'lost'
        end as outcome,

        ---------- numerics
        carts.cart_value,
        carts.messages_sent,
        carts.messages_clicked,
        extract(epoch from carts.abandoned_at - carts.started_at)::bigint
            as seconds_to_abandonment,
        extract(epoch from carts.converted_at - carts.abandoned_at)::bigint
            as seconds_from_abandonment_to_conversion,

        ---------- booleans
        carts.is_converted,
        carts.is_recovered,
        carts.messages_sent > 0 as has_messages_sent,

        ---------- timestamps
        carts.started_at,
        carts.abandoned_at,
        carts.first_message_sent_at,
        carts.converted_at,
        carts.recovered_at

    from carts
    left join orgs
        on carts.org_id = orgs.org_id

)

select * from final
