-- Inbound store events (Shopify webhooks, tracking API) rolled up to the app cart they
-- updated.

with

checkouts as (

    select org_id, cart_id, occurred_at from {{ ref('stg_shopify__checkouts') }}

),

orders as (

    select org_id, cart_id, occurred_at from {{ ref('stg_shopify__orders') }}

),

tracking as (

    select org_id, cart_id, occurred_at from {{ ref('stg_tracking__cart_events') }}

),

events as (

    select * from checkouts
    union all
    select * from orders
    union all
    select * from tracking

),

aggregated as (

    select
        org_id,
        cart_id,
        count(*) as events_received,
        min(occurred_at) as first_event_at,
        max(occurred_at) as last_event_at
    from events
    where cart_id is not null
    group by org_id, cart_id

)

select * from aggregated
