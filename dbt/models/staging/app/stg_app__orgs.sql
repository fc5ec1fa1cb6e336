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
        -- Attribution settings as stored (NULL when the org kept the default; the defaults
        -- are applied in int_org_attribution_settings).
        settings ->> 'attribution_touch' as attribution_touch,
        upper(settings ->> 'reporting_currency') as reporting_currency,

        ---------- numerics
        abandonment_timeout_seconds,
        attribution_window_seconds,
        (settings -> 'attribution_windows_seconds' ->> 'email')::integer
            as attribution_window_email_seconds,
        (settings -> 'attribution_windows_seconds' ->> 'sms')::integer
            as attribution_window_sms_seconds,
        (settings -> 'attribution_windows_seconds' ->> 'push')::integer
            as attribution_window_push_seconds,
        (settings ->> 'attribution_half_life_seconds')::integer as attribution_half_life_seconds,

        ---------- timestamps
        created_at

    from source

)

select * from renamed
