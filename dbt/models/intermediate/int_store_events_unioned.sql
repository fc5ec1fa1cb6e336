-- Every store-side event (platform webhooks and tracking API), one row per raw event, with
-- the columns they share. A filter on received_at reaches each branch's index scan.

with

shopify_checkouts as (

    select * from {{ ref('stg_shopify__checkouts') }}

),

shopify_orders as (

    select * from {{ ref('stg_shopify__orders') }}

),

woocommerce as (

    select * from {{ ref('stg_woocommerce__events') }}

),

bigcommerce as (

    select * from {{ ref('stg_bigcommerce__events') }}

),

magento as (

    select * from {{ ref('stg_magento__events') }}

),

generic as (

    select * from {{ ref('stg_generic__events') }}

),

tracking as (

    select * from {{ ref('stg_tracking__cart_events') }}

),

unioned as (

    select
        org_id, event_id, cart_id, 'shopify' as source, topic,
        'cart' as event_kind, currency, checkout_total as amount, occurred_at, received_at
    from shopify_checkouts

    union all

    select
        org_id, event_id, cart_id, 'shopify' as source, topic,
        'order' as event_kind, currency, order_total as amount, occurred_at, received_at
    from shopify_orders

    union all

    select
        org_id, event_id, cart_id, 'woocommerce' as source, topic,
        'order' as event_kind, currency, order_total as amount, occurred_at, received_at
    from woocommerce

    union all

    select
        org_id, event_id, cart_id, 'bigcommerce' as source, scope as topic,
        case when is_order_event then 'order' when is_cart_event then 'cart' else 'other' end
            as event_kind,
        null::text as currency, null::numeric as amount, occurred_at, received_at
    from bigcommerce

    union all

    select
        org_id, event_id, cart_id, 'magento' as source, observer_event as topic,
        case when is_order_event then 'order' else 'cart' end as event_kind,
        currency, grand_total as amount, occurred_at, received_at
    from magento

    union all

    select
        org_id, event_id, cart_id, 'generic' as source, event_name as topic,
        case when has_order then 'order' else 'cart' end as event_kind,
        currency, cart_total as amount, occurred_at, received_at
    from generic

    union all

    select
        org_id, event_id, cart_id, 'api' as source, event_name as topic,
        case when has_order then 'order' else 'cart' end as event_kind,
        currency, cart_total as amount, occurred_at, received_at
    from tracking

)

select * from unioned
