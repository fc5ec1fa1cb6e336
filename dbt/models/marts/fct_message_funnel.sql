-- The message funnel per day, campaign, step (1-based), variant and channel: messages sent,
-- delivered, opened and clicked. Held-out messages are counted apart, never as sent.
-- Campaign performance reads whole days of a period here and its partial edge days from
-- fct_messages (cartrecovery/analytics/buckets.py).


-- Incremental (docs/analytics.md): a build recomputes the days of what changed.
{{
    config(
        materialized='incremental',
        unique_key=['org_id', 'period_start'],
        incremental_strategy='delete+insert',
        on_schema_change='ignore',
        pre_hook="{{ delete_changed_days('message', 'period_start') }}",
        indexes=[{'columns': ['org_id', 'campaign_id', 'period_start']}],
    )
}}

with

messages as (

    select * from {{ ref('fct_messages') }}

),

final as (

    select
        ---------- ids
        org_id,
        campaign_id,

        ---------- strings
        channel,
        variant,

        ---------- numerics
        step_index,
        count(*) filter (where is_sent) as messages_sent,
        count(*) filter (where is_delivered) as messages_delivered,
        count(*) filter (where is_opened) as messages_opened,
        count(*) filter (where is_clicked) as messages_clicked,
        count(*) filter (where is_held_out) as messages_held_out,

        ---------- timestamps
        date_trunc('day', coalesce(sent_at, due_at), 'UTC') as period_start

    from messages
    where (is_sent or is_held_out)
        and {{ if_changed_day('message', 'coalesce(sent_at, due_at)') }}
    group by
        org_id,
        campaign_id,
        channel,
        variant,
        step_index,
        date_trunc('day', coalesce(sent_at, due_at), 'UTC')

)

select
    *,
    {{ built_at() }} as built_at
from final
