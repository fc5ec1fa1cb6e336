{#- The SQL of models/intermediate/int_cart_events_aggregated_to_carts.sql; the filters (carts_where)
    restrict its first scans for incremental marts (macros/incremental/changes.sql). -#}
{% macro int_cart_events_aggregated_to_carts_body(carts_where='true') %}
with

checkouts as (

    {% if carts_where == 'true' %}
    select org_id, cart_id, occurred_at from {{ ref('stg_shopify__checkouts') }}
    {% else %}
    {{ rows_of_changed_carts(ref('stg_shopify__checkouts'), 'org_id, cart_id, occurred_at') }}
    {% endif %}

),

orders as (

    {% if carts_where == 'true' %}
    select org_id, cart_id, occurred_at from {{ ref('stg_shopify__orders') }}
    {% else %}
    {{ rows_of_changed_carts(ref('stg_shopify__orders'), 'org_id, cart_id, occurred_at') }}
    {% endif %}

),

tracking as (

    {% if carts_where == 'true' %}
    select org_id, cart_id, occurred_at from {{ ref('stg_tracking__cart_events') }}
    {% else %}
    {{ rows_of_changed_carts(ref('stg_tracking__cart_events'), 'org_id, cart_id, occurred_at') }}
    {% endif %}

),

events as (

    select * from checkouts
    union all
    select * from orders
    union all
    select * from tracking

),

aggregated as (

    select
        org_id,
        cart_id,
        count(*) as events_received,
        min(occurred_at) as first_event_at,
        max(occurred_at) as last_event_at
    from events
    where cart_id is not null
    group by org_id, cart_id

)

select * from aggregated
{% endmacro %}

{#- Its rows: the view itself when nothing is filtered (so the models reading it keep that
    dependency, and their unit tests its fixture), else the SQL with the filters. Parsing
    renders the SQL too, so dbt records the tables a filtered build reads. -#}
{% macro int_cart_events_aggregated_to_carts_sql(carts_where='true', inline=false) %}
    {%- if not execute -%}{%- set _ = int_cart_events_aggregated_to_carts_body(carts_where) -%}{%- endif -%}
    {%- if inline or carts_where != 'true' -%}
    {{ int_cart_events_aggregated_to_carts_body(carts_where) }}
    {%- else -%}
    select * from {{ ref('int_cart_events_aggregated_to_carts') }}
    {%- endif -%}
{% endmacro %}
