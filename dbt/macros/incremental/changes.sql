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
{% macro if_changed_cart(prefix='', column='cart_id') -%}
    {%- if not execute or incremental_build() -%}{%- set changes = ref('int_changes') -%}{%- endif -%}
    {%- if incremental_build() -%}
    ({{ prefix }}org_id, {{ prefix }}{{ column }}) in (select org_id, cart_id from {{ changes }} where cart_id is not null)
    {%- else -%}
    true
    {%- endif -%}
{%- endmacro %}

{% macro if_changed_order(prefix='') -%}
    {%- if not execute or incremental_build() -%}{%- set changes = ref('int_changes') -%}{%- endif -%}
    {%- if incremental_build() -%}
    ({{ prefix }}org_id, {{ prefix }}order_id) in (select org_id, order_id from {{ changes }} where order_id is not null)
    {%- else -%}
    true
    {%- endif -%}
{%- endmacro %}

{#- Why the filters above are plain semi-joins on (org_id, key): int_changes is analysed
    when it is built, so the planner knows how many keys there are and picks index lookups
    for a few and a hash join for many. Arrays of the changed orgs and keys
    ("org_id = any(...) and cart_id = any(...)") looked the rows up faster for one org, but
    an index scan takes every combination of the two arrays (changes of 300 orgs and
    18,000 carts: 5.4 million lookups), and the planner, blind to an array's length, built
    nested loops on an estimate of ten rows (docs/analytics.md, "Incremental and full
    builds"). -#}

{#- Messages of changed carts, for sources keyed by message and carrying its cart (message
    events). -#}
{% macro if_changed_message(prefix='') -%}
    {%- if not execute or incremental_build() -%}
        {%- set changes = ref('int_changes') -%}
        {%- set messages = ref('stg_app__messages') -%}
    {%- endif -%}
    {%- if incremental_build() -%}
    {#- Callbacks are found by message through app.message_events (org_id, message_id)
        (migration 0023). -#}
    ({{ prefix }}org_id, {{ prefix }}message_id) in (
        select m.org_id, m.message_id from {{ messages }} as m
        where (m.org_id, m.cart_id) in (select org_id, cart_id from {{ changes }} where cart_id is not null)
    )
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
    {%- elif kind == 'cart' -%}
    select distinct org_id, date_trunc('day', abandoned_at, 'UTC') as day_start
    from {{ ref('stg_app__carts') }}
    where abandoned_at is not null
        and (org_id, cart_id) in (
            select org_id, cart_id from {{ changes }} where cart_id is not null
        )
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
    {%- endif -%}
{%- endmacro %}

{#- A day-grain mart's filter in an incremental build, else none: its rows whose time
    (``time_expression``; the mart keeps its UTC day) falls on a changed day of their org; and
    its pre-hook, deleting those days first (a day may have lost every row of a group).
    The changed days are read when the model runs (int_changes is built by then) and given
    as literal time ranges: the planner then reads them through an index on the time where
    there is one, and elsewhere compares times instead of computing date_trunc(..., 'UTC')
    of every row of the table (that took longer than the rest of the query). Past a few
    hundred (org, day) pairs (many orgs changed) the pairs stay a subquery, behind the
    ranges of their distinct days. -#}
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
    {#- Many orgs changed (each with its own days): the distinct days as time ranges first,
        so only their rows are checked against the (org, day) pairs. -#}
    {%- set distinct_query -%}
        select distinct changed.day_start::text
        from ({{ changed_days(kind) }}) as changed
        order by 1
        limit 101
    {%- endset -%}
    {%- set distinct_days = run_query(distinct_query).columns[0].values() -%}
    {%- if distinct_days | length <= 100 %}
    (
    {%- for day_start in distinct_days %}
        {% if not loop.first %}or {% endif -%}
        ({{ time_expression }} >= '{{ day_start }}'::timestamptz
            and {{ time_expression }} < '{{ day_start }}'::timestamptz + interval '24 hours')
    {%- endfor %}
    )
    and {% endif -%}
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
    lower-cased email ((org_id, lower(email)), migration 0022), else customer id
    ((org_id, customer_id, abandoned_at)), else phone (not indexed: read only when a customer
    is keyed by phone). A join on the key itself would compute it for every cart. Each branch
    finds only the carts keyed its way (a cart with an email is keyed by it, ...) and joins
    on the org and that value, so every cart comes once, with its own key. -#}
{% macro carts_of_customers(customers) -%}
    {%- set carts = ref('stg_app__carts') -%}
    select carts.*
    from {{ customers }} as customers
    inner join {{ carts }} as carts
        on carts.org_id = customers.org_id
        and carts.email = substr(customers.customer_key, 7)
    where customers.customer_key like 'email:%'
    union all
    select carts.*
    from {{ customers }} as customers
    inner join {{ carts }} as carts
        on carts.org_id = customers.org_id
        and carts.customer_id = substr(customers.customer_key, 10)::uuid
    where customers.customer_key like 'customer:%'
        and nullif(carts.email, '') is null
    union all
    select carts.*
    from {{ customers }} as customers
    inner join {{ carts }} as carts
        on carts.org_id = customers.org_id
        and carts.phone = substr(customers.customer_key, 7)
    where customers.customer_key like 'phone:%'
        -- checked once: without a customer keyed by phone the branch reads no cart
        and exists (select from {{ customers }} where customer_key like 'phone:%')
        and nullif(carts.email, '') is null
        and carts.customer_id is null
{%- endmacro %}
