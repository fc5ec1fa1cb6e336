{#
  Incremental marts recompute only what changed since the last build (docs/analytics.md,
  "Incremental and full builds"): int_changed_carts and int_changed_orders list the carts
  and orders whose rows a build must rewrite. These macros render the filters that carry
  that list down to the first scan of each source table, so an incremental build never
  aggregates or joins whole tables (a filter on a mart's output would not reach through the
  views' unions, groupings and window functions).
#}

{#- The time since which sources count as changed: the start of the last successful build
    (pipelines/dbt_build.py passes it), minus the lookback for rows committed late. -#}
{% macro changes_since() -%}
    ('{{ env_var("CARTRECOVERY_CHANGES_SINCE", "-infinity") }}'::timestamptz
        - interval '{{ var("changes_lookback_minutes") }} minutes')
{%- endmacro %}

{#- "(<prefix>org_id, <prefix>cart_id) in (changed carts)" in an incremental build of the
    calling model, else none. The ref is rendered either way so dbt knows the dependency. -#}
{% macro if_changed_cart(prefix='', column='cart_id', lookups=true) -%}
    {%- if not execute or incremental_build() -%}{%- set changes = ref('int_changes') -%}{%- endif -%}
    {%- if incremental_build() -%}
    ({{ prefix }}org_id, {{ prefix }}{{ column }}) in (select org_id, cart_id from {{ changes }} where cart_id is not null)
    {% if lookups %}{{ as_index_lookups(changes, prefix, column, 'cart_id') }}{% endif %}
    {%- else -%}
    true
    {%- endif -%}
{%- endmacro %}

{% macro if_changed_order(prefix='') -%}
    {%- if not execute or incremental_build() -%}{%- set changes = ref('int_changes') -%}{%- endif -%}
    {%- if incremental_build() -%}
    ({{ prefix }}org_id, {{ prefix }}order_id) in (select org_id, order_id from {{ changes }} where order_id is not null)
    {{ as_index_lookups(changes, prefix, 'order_id', 'order_id') }}
    {%- else -%}
    true
    {%- endif -%}
{%- endmacro %}

{#- The same keys again as arrays: the planner takes a semi-join with the few thousand
    changed keys for a scan of the whole table, while "= any(array(...))" on an index's
    columns is read as index lookups (the semi-join then only confirms the pairs). Only
    where (org_id, <column>) is indexed: on a scan, each row would be compared with every
    key (if_changed_cart(lookups=false) leaves it out). -#}
{% macro as_index_lookups(changes, prefix, column, key) -%}
    and {{ prefix }}org_id = any(array(select distinct org_id from {{ changes }}))
    and {{ prefix }}{{ column }} = any(array(select {{ key }} from {{ changes }} where {{ key }} is not null))
{%- endmacro %}

{#- Messages of changed carts, for sources keyed by message and carrying its cart (message
    events). -#}
{% macro if_changed_message(prefix='') -%}
    {%- if not execute or incremental_build() -%}
        {%- set changes = ref('int_changes') -%}
        {%- set messages = ref('stg_app__messages') -%}
    {%- endif -%}
    {%- if incremental_build() -%}
    {#- The messages' ids as one array, computed once (as a semi-join the planner re-read
        them for every callback), and the callbacks looked up by cart (app.message_events
        has no message index): every writer stores the message's cart with them; one
        without a cart is read too. Message ids are random UUIDs, unique across orgs. #}
    {{ prefix }}message_id = any(array(
        select m.message_id from {{ messages }} as m
        where (m.org_id, m.cart_id) in (select org_id, cart_id from {{ changes }} where cart_id is not null)
        {{ as_index_lookups(changes, 'm.', 'cart_id', 'cart_id') }}
    ))
    and {{ prefix }}org_id = any(array(select distinct org_id from {{ changes }}))
    and ({{ prefix }}cart_id = any(array(select cart_id from {{ changes }} where cart_id is not null))
        or {{ prefix }}cart_id is null)
    {%- else -%}
    true
    {%- endif -%}
{%- endmacro %}

{#- Pre-hook of an incremental mart: delete the rows of every changed cart or order first
    (delete+insert alone would keep the rows of a key that no longer yields any, e.g. an
    order whose only touch moved out of its window). -#}
{% macro delete_changed(kind, column=none) -%}
    {%- if incremental_build() -%}
    delete from {{ this }}
    where (org_id, {{ column or kind ~ '_id' }}) in (
        select org_id, {{ kind }}_id from {{ ref('int_changes') }}
        where {{ kind }}_id is not null
    )
    {#- every mart deleted from this way is indexed on (org_id, <column>) -#}
    {{ as_index_lookups(ref('int_changes'), '', column or kind ~ '_id', kind ~ '_id') }}
    {%- endif -%}
{%- endmacro %}

{#- The (org_id, day_start) UTC days a day-grain mart recomputes: the days of the changed
    orders (kind 'order': order time), carts (kind 'cart': abandonment time) or of the
    changed carts' messages (kind 'message': due and send time, as a message moves from its
    due day to its send day when it goes out). -#}
{% macro changed_days(kind) -%}
    {%- set changes = ref('int_changes') if (not execute or incremental_build()) else none -%}
    {%- if kind == 'order' -%}
    select distinct org_id, date_trunc('day', ordered_at, 'UTC') as day_start
    from {{ ref('stg_app__orders') }}
    where (org_id, order_id) in (
        select org_id, order_id from {{ changes }} where order_id is not null
    )
    {{ as_index_lookups(changes, '', 'order_id', 'order_id') }}
    {%- elif kind == 'cart' -%}
    select distinct org_id, date_trunc('day', abandoned_at, 'UTC') as day_start
    from {{ ref('stg_app__carts') }}
    where abandoned_at is not null
        and (org_id, cart_id) in (
            select org_id, cart_id from {{ changes }} where cart_id is not null
        )
        {{ as_index_lookups(changes, '', 'cart_id', 'cart_id') }}
    {%- else -%}
    select distinct messages.org_id, days.day_start
    from {{ ref('stg_app__messages') }} as messages
    cross join lateral (
        values
            (date_trunc('day', messages.due_at, 'UTC')),
            (date_trunc('day', coalesce(messages.sent_at, messages.due_at), 'UTC'))
    ) as days (day_start)
    where days.day_start is not null
        and (messages.org_id, messages.cart_id) in (
            select org_id, cart_id from {{ changes }} where cart_id is not null
        )
        {{ as_index_lookups(changes, 'messages.', 'cart_id', 'cart_id') }}
    {%- endif -%}
{%- endmacro %}

{#- A day-grain mart's filter in an incremental build, else none: its rows whose time
    (``time_expression``; the mart keeps its UTC day) falls on a changed day of their org; and
    its pre-hook, deleting those days first (a day may have lost every row of a group).
    The changed days are read when the model runs (int_changes is built by then) and given
    as literal time ranges: the planner then reads them through an index on the time where
    there is one, and elsewhere compares times instead of computing date_trunc(..., 'UTC')
    of every row of the table (that took longer than the rest of the query). Past a few
    hundred days they stay a subquery. -#}
{% macro if_changed_day(kind, time_expression) -%}
    {%- if not execute -%}{%- set _ = changed_days(kind) -%}{%- endif -%}
    {%- if incremental_build() -%}
    {%- set query -%}
        select changed.org_id::text, changed.day_start::text
        from ({{ changed_days(kind) }}) as changed
        order by 1, 2
        limit 301
    {%- endset -%}
    {%- set days = run_query(query).rows -%}
    {%- if days | length > 300 -%}
    (org_id, date_trunc('day', {{ time_expression }}, 'UTC')) in ({{ changed_days(kind) }})
    {%- elif days | length == 0 -%}
    false
    {%- else -%}
    (
    {%- for org_id, day_start in days %}
        {% if not loop.first %}or {% endif -%}
        (org_id = '{{ org_id }}'::uuid
            and {{ time_expression }} >= '{{ day_start }}'::timestamptz
            and {{ time_expression }} < '{{ day_start }}'::timestamptz + interval '24 hours')
    {%- endfor %}
    )
    {%- endif -%}
    {%- else -%}
    true
    {%- endif -%}
{%- endmacro %}

{% macro delete_changed_days(kind, column='day_start') -%}
    {%- if incremental_build() -%}
    delete from {{ this }} where (org_id, {{ column }}) in ({{ changed_days(kind) }})
    {%- endif -%}
{%- endmacro %}

{#- is_incremental(), false where there is no relation to build (a unit test's this). -#}
{% macro incremental_build() -%}
    {{- return(this is not none and is_incremental()) -}}
{%- endmacro %}

{#- The rows of ``relation`` (with org_id, cart_id) of the changed carts, looked up cart by
    cart: for raw store events, where the (org_id, cart_id) index beats scanning every
    event, and a semi-join would be planned as that scan. -#}
{% macro rows_of_changed_carts(relation, columns) -%}
    select source_rows.*
    from (
        select org_id, cart_id from {{ ref('int_changes') }} where cart_id is not null
    ) as changed
    cross join lateral (
        select {{ columns }} from {{ relation }} as cart_rows
        where cart_rows.org_id = changed.org_id and cart_rows.cart_id = changed.cart_id
        -- offset 0 keeps the planner from flattening this into one join over every event.
        offset 0
    ) as source_rows
{%- endmacro %}

{#- The carts (every column of stg_app__carts) of the customers in ``customers`` (a CTE with
    org_id and customer_key, see customer_key()), found through indexes of app.carts: by
    lower-cased email ((org_id, lower(email)), migration 0022), else customer id, else phone
    (not indexed: read only when a customer is keyed by phone). A join on the key itself
    would compute it for every cart. Each branch finds only carts keyed its way (a cart with
    an email is keyed by it, ...), so none comes twice; as the values are looked up across
    the orgs, the whole key is checked at the end, by a hashed subplan (the coalesce keeps
    the planner from making it a join: misled by the CTE's estimate, it compared every
    candidate with every key). -#}
{% macro carts_of_customers(customers) -%}
    {%- set carts = ref('stg_app__carts') -%}
    {%- set orgs -%}org_id = any(array(select distinct org_id from {{ customers }})){%- endset -%}
    select candidates.*
    from (
        select * from {{ carts }}
        where {{ orgs }}
            and email = any(array(
                select substr(customer_key, 7) from {{ customers }} where customer_key like 'email:%'
            ))
        union all
        select * from {{ carts }}
        where {{ orgs }}
            and nullif(email, '') is null
            and customer_id = any(array(
                select substr(customer_key, 10)::uuid from {{ customers }}
                where customer_key like 'customer:%'
            ))
        union all
        select * from {{ carts }}
        where exists (select from {{ customers }} where customer_key like 'phone:%')
            and {{ orgs }}
            and nullif(email, '') is null
            and customer_id is null
            and phone = any(array(
                select substr(customer_key, 7) from {{ customers }} where customer_key like 'phone:%'
            ))
    ) as candidates
    where coalesce(
        (candidates.org_id, {{ customer_key('candidates.email', 'candidates.customer_id', 'candidates.phone') }})
            in (select org_id, customer_key from {{ customers }}),
        false
    )
{%- endmacro %}
