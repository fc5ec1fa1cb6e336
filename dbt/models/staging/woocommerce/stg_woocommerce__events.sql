-- One row per WooCommerce webhook received (order.created, order.updated, ...). The payload is
-- a WooCommerce REST order resource; its money fields are decimal strings.

with

source as (

    select * from {{ source('raw', 'events') }}
    where source = 'woocommerce'

),

renamed as (

    select
        ---------- ids
        event_id,
        org_id,
        connection_id,
        cart_id,
        payload ->> 'id' as order_external_id,
        payload ->> 'cart_hash' as cart_hash,

        ---------- strings
        topic,
        payload ->> 'status' as order_status,
        lower(nullif(payload -> 'billing' ->> 'email', '')) as email,
        upper(payload ->> 'currency') as currency,

        ---------- numerics
        {{ safe_numeric("payload ->> 'total'") }} as order_total,
        {{ jsonb_array_size("payload -> 'line_items'") }} as line_item_count,

        ---------- timestamps
        coalesce(occurred_at, received_at) as occurred_at,
        received_at

    from source

)

select * from renamed
