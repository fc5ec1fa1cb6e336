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
        experiment ->> 'name' as experiment_name,
        array(
            select distinct step ->> 'channel'
            from jsonb_array_elements(
                case when jsonb_typeof(sequence_steps) = 'array' then sequence_steps end
            ) as steps (step)
            where step ->> 'channel' is not null
            order by 1
        ) as channels,

        ---------- numerics
        priority,
        {{ jsonb_array_size('sequence_steps') }} as step_count,
        coalesce({{ safe_numeric("experiment ->> 'holdout_percent'") }}, 0) as holdout_percent,

        ---------- booleans
        experiment is not null and experiment <> 'null'::jsonb as has_experiment,

        ---------- timestamps
        created_at,
        updated_at

    from source

)

select * from renamed
