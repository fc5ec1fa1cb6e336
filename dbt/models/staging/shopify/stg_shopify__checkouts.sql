-- One row per Shopify checkout webhook received (checkouts/create, checkouts/update).
-- A checkout is Shopify's abandonable object: it carries the email and the recovery link.

with

source as (

    select * from {{ source('raw', 'events') }}
    where source = 'shopify'
        and topic in ('checkouts/create', 'checkouts/update')

),

renamed as (

    select
        ---------- ids
        event_id,
        org_id,
        connection_id,
        cart_id,
        payload ->> 'id' as checkout_external_id,
        payload ->> 'token' as checkout_token,
        payload ->> 'cart_token' as cart_token,

        ---------- strings
        topic,
        lower(nullif(payload ->> 'email', '')) as email,
        nullif(payload ->> 'phone', '') as phone,
        upper(coalesce(payload ->> 'presentment_currency', payload ->> 'currency')) as currency,
        payload ->> 'abandoned_checkout_url' as abandoned_checkout_url,

        ---------- numerics
        {{ safe_numeric("payload ->> 'total_price'") }} as checkout_total,
        {{ safe_numeric("payload ->> 'subtotal_price'") }} as checkout_subtotal,
        {{ safe_numeric("payload ->> 'total_discounts'") }} as checkout_discounts,
        {{ jsonb_array_size("payload -> 'line_items'") }} as line_item_count,

        ---------- booleans
        (payload ->> 'completed_at') is not null as is_completed,
        coalesce(
            (payload ->> 'buyer_accepts_marketing') = 'true', false
        ) as is_marketing_accepted,

        ---------- timestamps
        {{ safe_timestamptz("payload ->> 'created_at'") }} as checkout_created_at,
        {{ safe_timestamptz("payload ->> 'updated_at'") }} as checkout_updated_at,
        {{ safe_timestamptz("payload ->> 'completed_at'") }} as completed_at,
        coalesce(occurred_at, received_at) as occurred_at,
        received_at

    from source

)

select * from renamed
