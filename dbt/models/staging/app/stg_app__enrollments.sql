with

source as (

    select * from {{ source('app', 'enrollments') }}

),

renamed as (

    select
        ---------- ids
        enrollment_id,
        org_id,
        cart_id,
        campaign_id,

        ---------- timestamps
        enrolled_at

    from source

)

select * from renamed
