-- Discount codes issued for recovery messages (app.coupons, migration 0005): one row per code.

with

source as (

    select * from {{ source('app', 'coupons') }}

),

renamed as (

    select
        ---------- ids
        coupon_id,
        org_id,
        message_id,
        cart_id,
        order_id,

        ---------- strings
        type as coupon_type,
        upper(currency) as currency,

        ---------- numerics
        value as coupon_value,

        ---------- booleans
        redeemed_at is not null as is_redeemed,

        ---------- timestamps
        created_at,
        redeemed_at

    from source

)

select * from renamed
