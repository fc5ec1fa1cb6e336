{#- The SQL of models/intermediate/int_touches.sql; the filters (carts_where, messages_where) restrict its
    first scans for incremental marts (macros/incremental/changes.sql). -#}
{% macro int_touches_body(carts_where='true', messages_where='true') %}
with

messages as (

    select * from {{ ref('stg_app__messages') }}
    where {{ carts_where }}

),

interactions as (

    {{ int_message_events_aggregated_to_messages_sql(messages_where) }}

),

org_settings as (

    select * from {{ ref('int_org_attribution_settings') }}

),

touched as (

    select
        messages.org_id,
        messages.message_id,
        messages.cart_id,
        messages.campaign_id,
        messages.channel,
        messages.variant,
        messages.step_number,
        messages.sent_at,
        interactions.first_clicked_at,
        interactions.first_opened_at,
        case
            when org_settings.attribution_touch = 'open_or_click'
                then least(interactions.first_clicked_at, interactions.first_opened_at)
            else interactions.first_clicked_at
        end as touched_at
    from messages
    inner join interactions
        on messages.org_id = interactions.org_id
        and messages.message_id = interactions.message_id
    inner join org_settings
        on messages.org_id = org_settings.org_id

),

final as (

    select
        ---------- ids
        org_id,
        message_id,
        cart_id,
        campaign_id,

        ---------- strings
        channel,
        coalesce(variant, 'default') as variant,
        case when touched_at = first_clicked_at then 'click' else 'open' end as touch_type,

        ---------- numerics
        step_number as step_index,

        ---------- timestamps
        sent_at,
        touched_at

    from touched
    where touched_at is not null

)

select * from final
{% endmacro %}

{#- Its rows: the view itself when nothing is filtered (so the models reading it keep that
    dependency, and their unit tests its fixture), else the SQL with the filters. Parsing
    renders the SQL too, so dbt records the tables a filtered build reads. -#}
{% macro int_touches_sql(carts_where='true', messages_where='true', inline=false) %}
    {%- if not execute -%}{%- set _ = int_touches_body(carts_where, messages_where) -%}{%- endif -%}
    {%- if inline or carts_where != 'true' or messages_where != 'true' -%}
    {{ int_touches_body(carts_where, messages_where) }}
    {%- else -%}
    select * from {{ ref('int_touches') }}
    {%- endif -%}
{% endmacro %}
