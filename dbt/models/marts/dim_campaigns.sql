-- One row per campaign: its name, status, steps, channels and experiment settings.

with

campaigns as (

    select * from {{ ref('stg_app__campaigns') }}

),

final as (

    select
        ---------- ids
        campaigns.org_id,
        campaigns.campaign_id,

        ---------- strings
        campaigns.campaign_name,
        campaigns.campaign_status,
        campaigns.experiment_name,
        campaigns.channels,

        ---------- numerics
        campaigns.priority,
        campaigns.step_count,
        campaigns.holdout_percent,

        ---------- booleans
        campaigns.has_experiment,
        campaigns.holdout_percent > 0 as has_holdout,

        ---------- timestamps
        campaigns.created_at,
        campaigns.updated_at

    from campaigns

)

select
    *,
    {{ built_at() }} as built_at
from final
