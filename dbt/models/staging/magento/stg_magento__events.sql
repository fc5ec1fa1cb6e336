-- One row per Adobe Commerce (Magento 2) webhook call ({eventName, data}); the adapter keeps
-- the call under payload.webhook and the normalised observer event name as the topic.

with

source as (

    select * from {{ source('raw', 'events') }}
    where source = 'magento'

),

objects as (

    select
        *,
        coalesce(
            payload -> 'webhook' -> 'data' -> 'order',
            payload -> 'webhook' -> 'data' -> 'quote',
            payload -> 'webhook' -> 'data' -> 'cart',
            payload -> 'webhook' -> 'data' -> 'data_object'
        ) as magento_object
    from source

),

renamed as (

    select
        ---------- ids
        event_id,
        org_id,
        connection_id,
        cart_id,
        coalesce(magento_object ->> 'quote_id', magento_object ->> 'entity_id') as quote_id,
        magento_object ->> 'increment_id' as order_increment_id,

        ---------- strings
        topic as observer_event,
        lower(nullif(magento_object ->> 'customer_email', '')) as email,
        upper(
            coalesce(
                magento_object ->> 'order_currency_code',
                magento_object ->> 'quote_currency_code'
            )
        ) as currency,

        ---------- numerics
        {{ safe_numeric("magento_object ->> 'grand_total'") }} as grand_total,

        ---------- booleans
        topic in (
            'observer.sales_order_place_after',
            'observer.checkout_submit_all_after',
            'observer.sales_order_save_after'
        ) as is_order_event,

        ---------- timestamps
        coalesce(occurred_at, received_at) as occurred_at,
        received_at

    from objects

)

select * from renamed
