-- One row per Shopify order webhook received (orders/create, orders/paid, orders/updated).

with

source as (

    select * from {{ source('raw', 'events') }}
    where source = 'shopify'
        and topic in ('orders/create', 'orders/paid', 'orders/updated')

),

renamed as (

    select
        ---------- ids
        event_id,
        org_id,
        connection_id,
        cart_id,
        payload ->> 'id' as order_external_id,
        payload ->> 'checkout_id' as checkout_external_id,
        payload ->> 'checkout_token' as checkout_token,
        payload ->> 'cart_token' as cart_token,

        ---------- strings
        topic,
        payload ->> 'name' as order_name,
        lower(nullif(coalesce(payload ->> 'email', payload ->> 'contact_email'), '')) as email,
        payload ->> 'financial_status' as financial_status,
        upper(coalesce(payload ->> 'presentment_currency', payload ->> 'currency')) as currency,

        ---------- numerics
        {{ safe_numeric("payload ->> 'total_price'") }} as order_total,
        {{ safe_numeric("payload ->> 'subtotal_price'") }} as order_subtotal,
        {{ safe_numeric("payload ->> 'total_discounts'") }} as order_discounts,
        {{ safe_numeric("payload ->> 'total_tax'") }} as order_tax,
        {{ jsonb_array_size("payload -> 'line_items'") }} as line_item_count,

        ---------- booleans
        coalesce((payload ->> 'test') = 'true', false) as is_test,
        (payload ->> 'cancelled_at') is not null as is_cancelled,

        ---------- timestamps
        {{ safe_timestamptz("payload ->> 'created_at'") }} as ordered_at,
        {{ safe_timestamptz("payload ->> 'cancelled_at'") }} as cancelled_at,
        coalesce(occurred_at, received_at) as occurred_at,
        received_at

    from source

)

select * from renamed
