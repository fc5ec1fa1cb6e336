-- One row per recovered cart: the order, the message and campaign it is attributed to,
-- and how long after the message the customer bought.

with

recoveries as (

    select * from {{ ref('stg_app__recoveries') }}

),

messages as (

    select * from {{ ref('stg_app__messages') }}

),

campaigns as (

    select * from {{ ref('stg_app__campaigns') }}

),

orders as (

    select * from {{ ref('stg_app__orders') }}

),

final as (

    select
        ---------- ids
        recoveries.org_id,
        recoveries.cart_id,
        recoveries.order_id,
        coalesce(recoveries.campaign_id, messages.campaign_id) as campaign_id,
        recoveries.message_id,

        ---------- strings
        campaigns.campaign_name,
        coalesce(recoveries.channel, messages.channel) as channel,
        coalesce(recoveries.currency, orders.currency) as currency,

        ---------- numerics
        messages.step_index,
        recoveries.revenue,
        round(
            extract(
                epoch from coalesce(orders.ordered_at, recoveries.recovered_at) - messages.sent_at
            ) / 3600.0,
            2
        ) as hours_from_message_to_order,

        ---------- timestamps
        messages.sent_at as message_sent_at,
        recoveries.clicked_at,
        orders.ordered_at,
        recoveries.recovered_at

    from recoveries
    left join messages
        on recoveries.org_id = messages.org_id
        and recoveries.message_id = messages.message_id
    left join campaigns
        on recoveries.org_id = campaigns.org_id
        and coalesce(recoveries.campaign_id, messages.campaign_id) = campaigns.campaign_id
    left join orders
        on recoveries.org_id = orders.org_id
        and recoveries.order_id = orders.order_id

)

select * from final
