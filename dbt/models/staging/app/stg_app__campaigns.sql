with

source as (

    select * from {{ source('app', 'campaigns') }}

),

renamed as (

    select
        ---------- ids
        campaign_id,
        org_id,

        ---------- strings
        name as campaign_name,
        status as campaign_status,

        ---------- numerics
        priority,
        {{ jsonb_array_size('sequence_steps') }} as step_count,

        ---------- booleans
        experiment is not null and experiment <> 'null'::jsonb as has_experiment,

        ---------- timestamps
        created_at,
        updated_at

    from source

)

select * from renamed
