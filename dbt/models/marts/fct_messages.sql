-- One row per message (outbox row): its step (1-based), variant and channel, and how far it
-- got: sent -> delivered -> opened -> clicked. Held-out messages (status held_out) are kept
-- with is_held_out, never counted as sent.
-- Incremental: a build re-reads the messages whose outbox row changed, or that got a
-- callback, since the newest change already here minus the lookback; late callbacks for old
-- messages arrive with a new received_at and so are picked up.
-- The index serves campaign performance's partial edge days: its period filter is on
-- coalesce(sent_at, due_at), asked as a sent_at range, or sent_at null and a due_at range
-- (row-level security keeps an index on the coalesce expression from being used). dbt
-- creates indexes with the table (first or full build).

{{
    config(
        materialized='incremental',
        unique_key=['org_id', 'message_id'],
        incremental_strategy='delete+insert',
        on_schema_change='ignore',
        indexes=[
            {'columns': ['org_id', 'campaign_id', 'sent_at', 'due_at']},
            {'columns': ['source_changed_at']},
        ],
    )
}}

{% set recent = 'true' %}
{% if is_incremental() %}
{%- set changed_after = newest_minus_lookback('source_changed_at') -%}
{#- Only messages whose outbox row or callbacks changed after the cutoff can pass the final
    filter: reading just those, and their callbacks (looked up by message:
    app.message_events (org_id, message_id), migration 0023), keeps a build from
    aggregating every callback. The cutoff is a literal, so the planner sees how few rows
    are newer and takes the time indexes. -#}
{% set recent %}
    (org_id, message_id) in (select org_id, message_id from recent_messages)
{% endset %}
{% endif %}

with

{% if is_incremental() %}
recent_messages as materialized (

    select org_id, message_id from {{ ref('stg_app__messages') }}
    where updated_at > {{ changed_after }}
    union
    select org_id, message_id from {{ ref('stg_app__message_events') }}
    where received_at > {{ changed_after }} and message_id is not null

),
{% endif %}

messages as (

    select * from {{ ref('stg_app__messages') }}
    where {{ recent }}

),

interactions as (

    {{ int_message_events_aggregated_to_messages_sql(messages_where=recent) }}

),

joined as (

    select
        messages.*,
        interactions.open_count,
        interactions.click_count,
        interactions.has_failed,
        interactions.first_delivered_at,
        interactions.first_opened_at,
        interactions.first_clicked_at,
        greatest(messages.updated_at, interactions.last_event_received_at)
            as source_changed_at
    from messages
    left join interactions
        on messages.org_id = interactions.org_id
        and messages.message_id = interactions.message_id

),


final as (

    select
        ---------- ids
        org_id,
        message_id,
        cart_id,
        campaign_id,
        enrollment_id,

        ---------- strings
        channel,
        coalesce(variant, 'default') as variant,
        status,
        -- Smart send time / discount against their control share: the arm is the decision
        -- without its details (model, explore, control, fallback), null when not used.
        split_part(send_time_decision, ':', 1) as send_time_arm,
        send_time_model_version,
        split_part(discount_decision, ':', 1) as discount_arm,
        content_model_version,

        ---------- numerics
        step_number as step_index,
        coalesce(open_count, 0) as open_count,
        coalesce(click_count, 0) as click_count,
        send_time_propensity,

        ---------- booleans
        is_sent,
        is_held_out,
        is_sent and first_delivered_at is not null as is_delivered,
        is_sent and first_opened_at is not null as is_opened,
        is_sent and first_clicked_at is not null as is_clicked,
        coalesce(has_failed, false) as has_failed,
        is_send_time_explored,
        is_discount_offered,

        ---------- timestamps
        due_at,
        sent_at,
        first_delivered_at,
        first_opened_at,
        first_clicked_at,
        source_changed_at

    from joined
    {% if is_incremental() %}
    where source_changed_at > {{ changed_after }}
    {% endif %}

)

select
    *,
    {{ built_at() }} as built_at
from final
