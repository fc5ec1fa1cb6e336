-- One row per store-side event (platform webhooks and tracking API). Incremental: each build
-- replaces the events received since the newest one already here, minus a lookback
-- (var incremental_lookback_hours) so that rows committed late are not skipped: its pre-hook
-- deletes the rows received after that cutoff, the build inserts the sources' rows received
-- after it (an event's received_at never changes, so the two ranges hold the same events;
-- dbt renders the model's SQL before it runs the pre-hook: both read the cutoff before the
-- delete).
-- A merge on (org_id, event_id) would look each re-read event up in a table of every event
-- (it has no index on them: a million-row scan per build).

-- The received_at index serves the cutoff, this delete and int_changes (newest rows).
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        on_schema_change='ignore',
        indexes=[{'columns': ['received_at']}],
        pre_hook="{% if incremental_build() %}delete from {{ this }} where received_at > {{ newest_minus_lookback('received_at') }}{% endif %}",
    )
}}

with

store_events as (

    select * from {{ ref('int_store_events_unioned') }}

    {% if is_incremental() %}
    -- a literal: the planner prunes the older partitions and sees how few rows are newer
    where received_at > {{ newest_minus_lookback('received_at') }}
    {% endif %}

),

final as (

    select
        ---------- ids
        org_id,
        event_id,
        cart_id,

        ---------- strings
        source,
        topic,
        event_kind,
        currency,

        ---------- numerics
        amount,

        ---------- timestamps
        occurred_at,
        received_at

    from store_events

)

select
    *,
    {{ built_at() }} as built_at
from final
