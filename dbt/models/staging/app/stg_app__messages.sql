-- Recovery messages: one row per app.outbox row, i.e. per (cart, campaign step).

-- One select from the source, without the usual source/renamed CTEs: incremental builds
-- filter this view by the changed keys (a semi-join on int_changes), and PostgreSQL 15 only
-- turns that into index lookups (changed keys first) when the view is a plain select; over
-- an inlined CTE it hash-joins a scan of the whole table (docs/analytics.md).
select
    ---------- ids
    message_id,
    org_id,
    enrollment_id,
    cart_id,
    campaign_id,
    provider_message_id,

    ---------- strings
    channel,
    variant,
    status,
    reason,
    provider,
    -- How the models decided (migration 0014; docs/models.md): model, explore, control,
    -- fallback:<why>; null when the step does not use them.
    send_time_decision,
    send_time_model_version,
    discount_decision,
    content_model_version,

    ---------- numerics
    step_index,
    -- Campaign steps as people count them (the outbox's step_index starts at 0).
    step_index + 1 as step_number,
    attempts,
    send_time_propensity,

    ---------- booleans
    -- "sent" means a provider accepted it; the same definition as the live tiles.
    status = 'sent' as is_sent,
    -- A holdout cart is enrolled and tracked, but its message is never sent.
    status = 'held_out' as is_held_out,
    send_time_explored as is_send_time_explored,
    discount_offered as is_discount_offered,

    ---------- timestamps
    due_at,
    enqueued_at,
    sent_at,
    created_at,
    updated_at

from {{ source('app', 'outbox') }}
