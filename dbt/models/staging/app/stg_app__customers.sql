with

source as (

    select * from {{ source('app', 'customers') }}

),

renamed as (

    select
        ---------- ids
        customer_id,
        org_id,
        external_id as customer_external_id,

        ---------- strings
        lower(email) as email,
        phone,
        timezone,

        ---------- booleans
        coalesce(accepts_marketing, false) as is_marketing_accepted,

        ---------- timestamps
        created_at,
        updated_at

    from source

)

select * from renamed
