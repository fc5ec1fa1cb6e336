-- One row per customer, keyed as attribution matches them (email, else the store's customer
-- id, else the phone): carts, abandonments and orders, and recovered orders.

-- Incremental (docs/analytics.md): a build rewrites the customers of the carts and orders
-- in int_changes.
{{
    config(
        materialized='incremental',
        unique_key=['org_id', 'customer_key'],
        incremental_strategy='delete+insert',
        on_schema_change='ignore',
        indexes=[{'columns': ['org_id', 'customer_key']}],
    )
}}
-- depends_on: {{ ref('int_changes') }}

with

{% if is_incremental() %}
-- The customers of the carts and orders in int_changes.
changed_customers as (

    select
        carts.org_id,
        {{ customer_key('carts.email', 'carts.customer_id', 'carts.phone') }} as customer_key
    from {{ ref('stg_app__carts') }} as carts
    where {{ if_changed_cart('carts.') }}
    union
    select
        orders.org_id,
        {{ customer_key('orders.email', 'orders.customer_id', 'null') }} as customer_key
    from {{ ref('stg_app__orders') }} as orders
    where {{ if_changed_order('orders.') }}

),
{% endif %}

carts as (

    {% if is_incremental() %}
    {{ carts_of_customers('changed_customers') }}
    {% else %}
    select * from {{ ref('stg_app__carts') }}
    {% endif %}

),

order_contacts as (

    select * from {{ ref('stg_app__orders') }}
    {% if is_incremental() %}
    where (org_id, {{ customer_key('email', 'customer_id', 'null') }}) in (
        select org_id, customer_key from changed_customers
    )
    {% endif %}

),

orders as (

    select * from {{ ref('fct_orders') }}
    {% if is_incremental() %}
    where (org_id, order_id) in (select org_id, order_id from order_contacts)
    {% endif %}

),

cart_activity as (

    select
        org_id,
        {{ customer_key('email', 'customer_id', 'phone') }} as customer_key,
        max(customer_id::text)::uuid as customer_id,
        max(email) as email,
        max(phone) as phone,
        count(*) as carts,
        count(*) filter (where abandoned_at is not null) as abandoned_carts,
        min(started_at) as first_seen_at
    from carts
    group by 1, 2

),

order_activity as (

    select
        orders.org_id,
        {{ customer_key('order_contacts.email', 'order_contacts.customer_id', 'null') }}
            as customer_key,
        max(order_contacts.customer_id::text)::uuid as customer_id,
        max(order_contacts.email) as email,
        count(*) as orders,
        count(*) filter (where orders.is_recovery) as recovered_orders,
        min(orders.ordered_at) as first_ordered_at,
        max(orders.ordered_at) as last_ordered_at
    from orders
    inner join order_contacts
        on orders.org_id = order_contacts.org_id
        and orders.order_id = order_contacts.order_id
    group by 1, 2

),

final as (

    select
        ---------- ids
        coalesce(cart_activity.org_id, order_activity.org_id) as org_id,
        coalesce(cart_activity.customer_key, order_activity.customer_key) as customer_key,
        coalesce(cart_activity.customer_id, order_activity.customer_id) as customer_id,

        ---------- strings
        coalesce(cart_activity.email, order_activity.email) as email,
        cart_activity.phone,

        ---------- numerics
        coalesce(cart_activity.carts, 0) as carts,
        coalesce(cart_activity.abandoned_carts, 0) as abandoned_carts,
        coalesce(order_activity.orders, 0) as orders,
        coalesce(order_activity.recovered_orders, 0) as recovered_orders,

        ---------- timestamps
        least(cart_activity.first_seen_at, order_activity.first_ordered_at) as first_seen_at,
        order_activity.last_ordered_at

    from cart_activity
    full outer join order_activity
        on cart_activity.org_id = order_activity.org_id
        and cart_activity.customer_key = order_activity.customer_key
    where coalesce(cart_activity.customer_key, order_activity.customer_key) is not null

)

select
    *,
    {{ built_at() }} as built_at
from final
