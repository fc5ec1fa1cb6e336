-- One row per BigCommerce webhook callback ({scope, store_id, data, hash, created_at}); the
-- adapter keeps the callback under payload.callback. Callbacks carry ids only, not amounts.

with

source as (

    select * from {{ source('raw', 'events') }}
    where source = 'bigcommerce'

),

renamed as (

    select
        ---------- ids
        event_id,
        org_id,
        connection_id,
        cart_id,
        payload -> 'callback' ->> 'store_id' as store_external_id,
        payload -> 'callback' -> 'data' ->> 'id' as resource_external_id,
        payload -> 'callback' -> 'data' ->> 'cartId' as cart_external_id,

        ---------- strings
        topic as scope,
        payload -> 'callback' -> 'data' ->> 'type' as resource_type,

        ---------- booleans
        topic like 'store/cart/%' as is_cart_event,
        topic like 'store/order/%' as is_order_event,

        ---------- timestamps
        coalesce(occurred_at, received_at) as occurred_at,
        received_at

    from source

)

select * from renamed
