{#
  Settings of a build as a whole (docs/analytics.md, "Incremental and full builds").
#}

{#- on-run-start: summarise the BRIN ranges of the source tables that no summary covers yet.
    Incremental models find new rows through BRIN indexes on their arrival time
    (raw.events, app.message_events); a range inserted since the last vacuum has no summary,
    so an index scan reads all of it, and after a bulk load that is the whole table.
    Summarising reads only those new ranges. A table the build's role does not own, or one a
    vacuum is busy with (it takes the same lock), is left to autovacuum. -#}
{% macro summarize_source_brin_indexes() -%}
    {%- set schemas = [] -%}
    {%- for source in (graph.sources.values() if execute else []) -%}
        {%- if source.schema not in schemas -%}{%- do schemas.append(source.schema) -%}{%- endif -%}
    {%- endfor -%}
    do $$
    declare
        brin_index regclass;
    begin
        perform set_config('lock_timeout', '1s', true);
        for brin_index in
            select index_class.oid::regclass
            from pg_class as index_class
            inner join pg_am on pg_am.oid = index_class.relam
            inner join pg_namespace on pg_namespace.oid = index_class.relnamespace
            where pg_am.amname = 'brin'
                and index_class.relkind = 'i'
                and pg_namespace.nspname in ('{{ schemas | join("', '") }}')
        loop
            begin
                perform brin_summarize_new_values(brin_index);
            exception when insufficient_privilege or lock_not_available then
                null;
            end;
        end loop;
    end
    $$
{%- endmacro %}

{#- Pre-hook of every model an incremental build runs: no parallel workers and no JIT. Its
    queries read a few thousand rows through indexes; starting workers for them costs more
    than the query (and the build already runs several models at once), and so does
    compiling them (a lookup repeated per changed cart is estimated far above
    jit_above_cost: fct_carts spent more on compiling than on running). Random reads are
    priced as the cache makes them (random_page_cost 1.1, the usual setting for data in
    memory or on SSD; PostgreSQL's default of 4 assumes spinning disks): with the default,
    the planner scanned a whole table rather than look a few thousand changed keys up in
    its index. -#}
{% macro serial_plans_in_incremental_builds() -%}
    {%- if incremental_run() -%}
    set local max_parallel_workers_per_gather = 0; set local jit = off; set local random_page_cost = 1.1
    {%- endif -%}
{%- endmacro %}

{#- True in a build that recomputes only what changed (not --full-refresh, with a record
    of the last whole build: pipelines/dbt_build.py passes its start). -#}
{% macro incremental_run() -%}
    {{- return(not flags.FULL_REFRESH and env_var("CARTRECOVERY_CHANGES_SINCE", "-infinity") != "-infinity") -}}
{%- endmacro %}

{#- An incremental model's cutoff as a literal: the newest ``column`` it holds minus the
    lookback (var incremental_lookback_hours), read when the model runs. A literal rather
    than a subquery lets the planner estimate how few rows are newer (and prune partitions),
    so it reads them through the time indexes instead of scanning the table. -#}
{% macro newest_minus_lookback(column) -%}
    {%- if execute -%}
        {%- set query -%}
            select (
                coalesce(max({{ column }}), '-infinity'::timestamptz)
                - interval '{{ var("incremental_lookback_hours") }} hours'
            )::text
            from {{ this }}
        {%- endset -%}
        '{{ run_query(query).columns[0].values()[0] }}'::timestamptz
    {%- else -%}
        '-infinity'::timestamptz
    {%- endif -%}
{%- endmacro %}
