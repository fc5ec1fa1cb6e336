-- One row per event a custom shop posted to the generic adapter: the tracking API's body
-- ({event, cart_data, timestamp}) with a required event_id.

with

source as (

    select * from {{ source('raw', 'events') }}
    where source = 'generic'

),

renamed as (

    select
        ---------- ids
        event_id,
        org_id,
        connection_id,
        cart_id,
        payload ->> 'event_id' as shop_event_id,
        payload -> 'cart_data' ->> 'cart_id' as cart_external_id,
        coalesce(
            payload -> 'cart_data' -> 'order' ->> 'order_id',
            payload -> 'cart_data' -> 'order' ->> 'id'
        ) as order_external_id,

        ---------- strings
        coalesce(payload ->> 'event', topic) as event_name,
        lower(nullif(payload -> 'cart_data' ->> 'email', '')) as email,
        upper(payload -> 'cart_data' ->> 'currency') as currency,

        ---------- numerics
        {{ safe_numeric("payload -> 'cart_data' ->> 'total_price'") }} as cart_total,
        {{ jsonb_array_size("payload -> 'cart_data' -> 'line_items'") }} as line_item_count,

        ---------- booleans
        coalesce(jsonb_typeof(payload -> 'cart_data' -> 'order') = 'object', false) as has_order,

        ---------- timestamps
        coalesce(occurred_at, received_at) as occurred_at,
        received_at

    from source

)

select * from renamed
