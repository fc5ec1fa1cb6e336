{#- The SQL of models/intermediate/int_messages_aggregated_to_carts.sql; the filters (carts_where, messages_where)
    restrict its first scans for incremental marts (macros/incremental/changes.sql). -#}
{% macro int_messages_aggregated_to_carts_body(carts_where='true', messages_where='true') %}
with

messages as (

    select * from {{ ref('stg_app__messages') }}
    where {{ carts_where }}

),

clicks as (

    select
        org_id,
        message_id,
        min(occurred_at) as first_clicked_at
    from {{ ref('stg_app__message_events') }}
    where is_click and message_id is not null
        and {{ messages_where }}
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
{% endmacro %}

{#- Its rows: the view itself when nothing is filtered (so the models reading it keep that
    dependency, and their unit tests its fixture), else the SQL with the filters. Parsing
    renders the SQL too, so dbt records the tables a filtered build reads. -#}
{% macro int_messages_aggregated_to_carts_sql(carts_where='true', messages_where='true', inline=false) %}
    {%- if not execute -%}{%- set _ = int_messages_aggregated_to_carts_body(carts_where, messages_where) -%}{%- endif -%}
    {%- if inline or carts_where != 'true' or messages_where != 'true' -%}
    {{ int_messages_aggregated_to_carts_body(carts_where, messages_where) }}
    {%- else -%}
    select * from {{ ref('int_messages_aggregated_to_carts') }}
    {%- endif -%}
{% endmacro %}
