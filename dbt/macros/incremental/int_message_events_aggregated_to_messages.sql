{#- The SQL of models/intermediate/int_message_events_aggregated_to_messages.sql; the filters (messages_where) restrict its
    first scans for incremental marts (macros/incremental/changes.sql). -#}
{% macro int_message_events_aggregated_to_messages_body(messages_where='true') %}
with

message_events as (

    select * from {{ ref('stg_app__message_events') }}
    where message_id is not null
        and {{ messages_where }}

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
{% endmacro %}

{#- Its rows: the view itself when nothing is filtered (so the models reading it keep that
    dependency, and their unit tests its fixture), else the SQL with the filters. Parsing
    renders the SQL too, so dbt records the tables a filtered build reads. -#}
{% macro int_message_events_aggregated_to_messages_sql(messages_where='true', inline=false) %}
    {%- if not execute -%}{%- set _ = int_message_events_aggregated_to_messages_body(messages_where) -%}{%- endif -%}
    {%- if inline or messages_where != 'true' -%}
    {{ int_message_events_aggregated_to_messages_body(messages_where) }}
    {%- else -%}
    select * from {{ ref('int_message_events_aggregated_to_messages') }}
    {%- endif -%}
{% endmacro %}
