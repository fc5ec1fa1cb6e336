{#
  The incremental materialization, for PostgreSQL (docs/analytics.md, "Incremental and full
  builds"). A first build and a full refresh are dbt's own (dbt.materialization_incremental_default).
  An incremental run of a delete+insert model whose columns are left as they are
  (on_schema_change 'ignore', as every mart here) rewrites its rows in one statement (without
  a unique_key, as dbt's delete+insert, it only inserts):

      with new_rows as (<the model's query>),
      replaced as (delete from <mart> where (<unique key>) in (select <unique key> from new_rows))
      insert into <mart> (<its columns>) select <its columns> from new_rows

  dbt's own path first stores the query's rows in a temporary table, compares its columns
  with the mart's (three catalog queries), then deletes and inserts from it: four more round
  trips and a table written and read per model, for the few hundred rows an incremental run
  rewrites. The result is the same: the delete sees the rows the mart held before the
  statement, the insert adds the new ones; only the mart's own columns are inserted, by name
  (what 'ignore' does; a column the query lacks is an error either way). Column types are
  not widened (dbt's expand_target_column_types only lengthens varchar(n) columns; the marts
  have none). The delete and the insert run on one snapshot in an order PostgreSQL leaves
  open, so a mart written this way must not have a unique index on its key (none here has:
  dbt's tests check uniqueness after the build).
#}
{% materialization incremental, adapter='postgres' -%}
    {%- set existing_relation = load_cached_relation(this) -%}
    {%- set unique_key = config.get('unique_key') -%}
    {%- set direct = existing_relation is not none
        and existing_relation.is_table
        and not should_full_refresh()
        and config.get('incremental_strategy') == 'delete+insert'
        and config.get('on_schema_change', 'ignore') == 'ignore'
        and not (config.get('incremental_predicates') or config.get('predicates')) -%}
    {%- if not direct -%}
        {{ return(dbt.materialization_incremental_default()) }}
    {%- endif -%}

    {%- set target_relation = this.incorporate(type='table') -%}
    {%- set keys = ([unique_key] if unique_key is string else unique_key) if unique_key else [] -%}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    -- `BEGIN` happens here:
    {{ run_hooks(pre_hooks, inside_transaction=True) }}

    {#- The mart's columns in their order, from the catalog (one query; dbt's
        information_schema lookup is slower). -#}
    {%- set columns_query -%}
        select string_agg(quote_ident(attname), ', ' order by attnum)
        from pg_attribute
        where attrelid = '{{ target_relation }}'::regclass and attnum > 0 and not attisdropped
    {%- endset -%}
    {%- set columns = run_query(columns_query).columns[0].values()[0] -%}

    {% call statement('main') -%}
        with new_rows as materialized (
            select * from (
                {{ sql }}
            ) as model_rows
        )
        {%- if keys %},

        replaced as (
            delete from {{ target_relation }}
            where ({{ keys | join(', ') }}) in (select {{ keys | join(', ') }} from new_rows)
        )
        {%- endif %}

        insert into {{ target_relation }} ({{ columns }})
        select {{ columns }} from new_rows
    {%- endcall %}

    {% do apply_grants(target_relation, config.get('grants'), should_revoke=should_revoke(existing_relation, full_refresh_mode=False)) %}
    {% do persist_docs(target_relation, model) %}

    {{ run_hooks(post_hooks, inside_transaction=True) }}
    -- `COMMIT` happens here
    {% do adapter.commit() %}
    {{ run_hooks(post_hooks, inside_transaction=False) }}

    {{ return({'relations': [target_relation]}) }}
{%- endmaterialization %}
