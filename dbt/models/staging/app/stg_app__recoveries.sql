with

source as (

    select * from {{ source('app', 'recoveries') }}

),

renamed as (

    select
        ---------- ids
        cart_id,
        org_id,
        order_id,
        message_id,
        campaign_id,

        ---------- strings
        channel,
        upper(currency) as currency,

        ---------- numerics
        revenue,

        ---------- timestamps
        clicked_at,
        recovered_at

    from source

)

select * from renamed
