-- Every cart's history as one ordered stream: store events, the abandonment, messages sent
-- (or held out), message callbacks and clicks, and orders. entry_position orders a cart's
-- entries by time (ties: entry kind, then id).

with

store_events as (

    select * from {{ ref('int_store_events_unioned') }}
    where cart_id is not null

),

carts as (

    select * from {{ ref('stg_app__carts') }}

),

messages as (

    select * from {{ ref('stg_app__messages') }}

),

message_events as (

    select * from {{ ref('stg_app__message_events') }}
    where cart_id is not null

),

orders as (

    select * from {{ ref('stg_app__orders') }}
    where cart_id is not null

),

entries as (

    select
        org_id, cart_id, 'store_event' as entry_kind, source || ':' || topic as entry_name,
        event_id::text as entry_id, null::uuid as message_id, null::uuid as order_id,
        occurred_at
    from store_events

    union all

    select
        org_id, cart_id, 'abandoned' as entry_kind, 'abandoned' as entry_name,
        cart_id::text as entry_id, null::uuid as message_id, null::uuid as order_id,
        abandoned_at as occurred_at
    from carts
    where abandoned_at is not null

    union all

    select
        org_id, cart_id, 'message' as entry_kind,
        channel || ':step' || step_number || ':' || status as entry_name,
        message_id::text as entry_id, message_id, null::uuid as order_id,
        coalesce(sent_at, due_at) as occurred_at
    from messages
    where is_sent or is_held_out

    union all

    select
        org_id, cart_id, 'message_event' as entry_kind, event_type as entry_name,
        event_key as entry_id, message_id, null::uuid as order_id, occurred_at
    from message_events

    union all

    select
        org_id, cart_id, 'order' as entry_kind, platform || ':order' as entry_name,
        order_id::text as entry_id, null::uuid as message_id, order_id, ordered_at as occurred_at
    from orders

),

final as (

    select
        *,
        row_number() over (
            partition by org_id, cart_id order by occurred_at, entry_kind, entry_id
        ) as entry_position
    from entries

)

select * from final
