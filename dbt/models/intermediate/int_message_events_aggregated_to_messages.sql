-- One row per message that has callbacks or clicks: when it was first delivered, opened and
-- clicked (provider clicks and restore-link clicks alike, not unsubscribe-link clicks), and
-- how often.

with

message_events as (

    select * from {{ ref('stg_app__message_events') }}
    where message_id is not null

),

final as (

    select
        ---------- ids
        org_id,
        message_id,

        ---------- numerics
        count(*) filter (where event_type = 'open') as open_count,
        count(*) filter (where is_click and not is_unsubscribe_click) as click_count,

        ---------- booleans
        bool_or(event_type in ('bounce', 'dropped', 'undelivered', 'failed')) as has_failed,

        ---------- timestamps
        min(occurred_at) filter (where event_type = 'delivered') as first_delivered_at,
        min(occurred_at) filter (where event_type = 'open') as first_opened_at,
        min(occurred_at) filter (where is_click and not is_unsubscribe_click)
            as first_clicked_at,
        max(received_at) as last_event_received_at

    from message_events
    group by org_id, message_id

)

select * from final
