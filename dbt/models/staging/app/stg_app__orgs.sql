with

source as (

    select * from {{ source('app', 'orgs') }}

),

renamed as (

    select
        ---------- ids
        org_id,

        ---------- strings
        name as org_name,

        ---------- numerics
        abandonment_timeout_seconds,
        attribution_window_seconds,

        ---------- timestamps
        created_at

    from source

)

select * from renamed
