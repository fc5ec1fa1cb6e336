-- Recovery messages and their clicks rolled up to one row per cart.

with

messages as (

    select * from {{ ref('stg_app__messages') }}

),

clicks as (

    select
        org_id,
        message_id,
        min(occurred_at) as first_clicked_at
    from {{ ref('stg_app__message_events') }}
    where is_click and message_id is not null
    group by org_id, message_id

),

aggregated as (

    select
        messages.org_id,
        messages.cart_id,
        count(*) as messages_scheduled,
        count(*) filter (where messages.is_sent) as messages_sent,
        count(clicks.message_id) as messages_clicked,
        min(messages.sent_at) filter (where messages.is_sent) as first_message_sent_at,
        max(messages.sent_at) filter (where messages.is_sent) as last_message_sent_at,
        min(clicks.first_clicked_at) as first_clicked_at
    from messages
    left join clicks
        on messages.org_id = clicks.org_id
        and messages.message_id = clicks.message_id
    group by messages.org_id, messages.cart_id

)

select * from aggregated
