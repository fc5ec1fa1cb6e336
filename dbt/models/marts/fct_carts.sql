-- One row per cart with its outcome flags and message counts.

-- Incremental (docs/analytics.md): a build rewrites the carts in int_changes.
{{
    config(
        materialized='incremental',
        unique_key=['org_id', 'cart_id'],
        incremental_strategy='delete+insert',
        on_schema_change='ignore',
        indexes=[{'columns': ['org_id', 'cart_id']}],
        pre_hook="{{ delete_changed('cart') }}",
    )
}}

with

carts as (

    select * from {{ ref('stg_app__carts') }}
    where {{ if_changed_cart() }}

),

messages as (

    {{ int_messages_aggregated_to_carts_sql(carts_where=if_changed_cart(), messages_where=if_changed_message()) }}

),

events as (

    {{ int_cart_events_aggregated_to_carts_sql(carts_where=if_changed_cart()) }}

),

-- Recovered as the warehouse defines it (an order with an eligible touch, fct_recoveries);
-- a cart bought twice after touches is recovered by its first such order.
recoveries as (

    select distinct on (org_id, cart_id)
        org_id,
        cart_id,
        order_id,
        recovered_at
    from {{ ref('fct_recoveries') }}
    where {{ if_changed_cart() }}
    order by org_id, cart_id, recovered_at, order_id

),

-- A cart can in principle be matched by several orders; its conversion is the first one.
first_orders as (

    select distinct on (org_id, cart_id)
        org_id,
        cart_id,
        order_id,
        ordered_at
    from {{ ref('stg_app__orders') }}
    where cart_id is not null
        and {{ if_changed_cart() }}
    order by org_id, cart_id, ordered_at, order_id

),

joined as (

    select
        ---------- ids
        carts.cart_id,
        carts.org_id,
        carts.connection_id,
        carts.customer_id,
        carts.cart_external_id,
        coalesce(recoveries.order_id, first_orders.order_id) as order_id,

        ---------- strings
        carts.platform,
        carts.email,
        carts.currency,
        carts.status,
        carts.device,

        ---------- numerics
        carts.cart_value,
        carts.item_count,
        coalesce(messages.messages_scheduled, 0) as messages_scheduled,
        coalesce(messages.messages_sent, 0) as messages_sent,
        coalesce(messages.messages_clicked, 0) as messages_clicked,
        coalesce(events.events_received, 0) as events_received,

        ---------- booleans
        carts.abandoned_at is not null as is_abandoned,
        (
            recoveries.cart_id is not null
            or carts.status = 'recovered'
        ) as is_recovered,
        (
            carts.status in ('converted', 'recovered')
            or carts.converted_at is not null
            or first_orders.order_id is not null
            or recoveries.cart_id is not null
        ) as is_converted,

        ---------- timestamps
        carts.started_at,
        carts.last_activity_at,
        carts.abandoned_at,
        coalesce(
            carts.converted_at, first_orders.ordered_at, recoveries.recovered_at
        ) as converted_at,
        recoveries.recovered_at,
        messages.first_message_sent_at,
        messages.first_clicked_at,
        events.first_event_at,
        events.last_event_at,
        carts.created_at,
        carts.updated_at

    from carts
    left join messages
        on carts.org_id = messages.org_id
        and carts.cart_id = messages.cart_id
    left join events
        on carts.org_id = events.org_id
        and carts.cart_id = events.cart_id
    left join recoveries
        on carts.org_id = recoveries.org_id
        and carts.cart_id = recoveries.cart_id
    left join first_orders
        on carts.org_id = first_orders.org_id
        and carts.cart_id = first_orders.cart_id

)

select * from joined
