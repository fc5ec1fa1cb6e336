with

source as (

    select * from {{ source('app', 'orders') }}

),

renamed as (

    select
        ---------- ids
        order_id,
        org_id,
        connection_id,
        cart_id,
        customer_id,
        external_id as order_external_id,
        checkout_token,
        cart_token,

        ---------- strings
        platform,
        lower(email) as email,
        upper(currency) as currency,
        financial_status,

        ---------- numerics
        total_price as order_total,

        ---------- timestamps
        ordered_at,
        created_at

    from source

)

select * from renamed
