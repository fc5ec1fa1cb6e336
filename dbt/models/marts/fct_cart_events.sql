-- One row per store-side event (platform webhooks and tracking API). Incremental: each build
-- adds the events received since the newest one already here, minus a lookback
-- (var incremental_lookback_hours) so that rows committed late are not skipped; the merge key
-- (org_id, event_id) makes re-read rows replace themselves instead of duplicating.

-- The received_at index serves the next build's cutoff and int_changes (newest rows).
{{
    config(
        materialized='incremental',
        unique_key=['org_id', 'event_id'],
        incremental_strategy='delete+insert',
        on_schema_change='ignore',
        indexes=[{'columns': ['received_at']}],
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
