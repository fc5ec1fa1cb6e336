-- One row per event sent to the tracking API (snippet or REST):
-- {event, cart_data: {cart_id, email, total_price, currency, line_items, order?}, timestamp}.

with

source as (

    select * from {{ source('raw', 'events') }}
    where source = 'api'

),

renamed as (

    select
        ---------- ids
        event_id,
        org_id,
        cart_id,
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
        -- ingest already parsed the client's timestamp into occurred_at; trust that over
        -- re-parsing the payload, and fall back to arrival time.
        coalesce(occurred_at, received_at) as occurred_at,
        received_at

    from source

)

select * from renamed
