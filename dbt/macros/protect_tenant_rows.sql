{#
  Post-hook of every mart: the application role (cartrecovery_app, a non-superuser) may read
  it, and sees only the rows of the org set for its transaction (app.org_id), exactly like the
  app tables' tenant_isolation policy. Tables are rebuilt by dbt, so the policy is re-created
  on each build. Staging and intermediate views are not granted: a view runs as its owner and
  would bypass row-level security.
#}
{% macro protect_tenant_rows() -%}
    {#- The schema's USAGE is granted once per run (grant_marts_schema): concurrent GRANTs on
        one schema fail with "tuple concurrently updated". #}
    {%- set role = var('app_role', 'cartrecovery_app') -%}
    {#- An incremental build changes rows of a table that already has all of this: only its
        build time is new. -#}
    {%- if not incremental_build() %}
    do $$
    begin
        if exists (select 1 from pg_roles where rolname = '{{ role }}') then
            execute 'grant select on {{ this }} to {{ role }}';
        end if;
    end
    $$;
    alter table {{ this }} enable row level security;
    drop policy if exists tenant_isolation on {{ this }};
    create policy tenant_isolation on {{ this }}
        using (org_id = nullif(current_setting('app.org_id', true), '')::uuid);
    {%- endif %}
    {#- The build time, readable by every org under RLS: the analytics API's as_of
        (cartrecovery/analytics/marts.py parses it; keep the "built_at " prefix). #}
    comment on table {{ this }} is 'built_at {{ run_started_at.isoformat() }}'
{%- endmacro %}


{# on-run-end: the application role may use the marts schema (tables are granted one by one). #}
{% macro grant_marts_schema() -%}
    {%- set role = var('app_role', 'cartrecovery_app') -%}
    do $$
    begin
        if exists (select 1 from pg_roles where rolname = '{{ role }}')
            and exists (
                select 1 from pg_namespace where nspname = '{{ target.schema }}_marts'
            ) then
            execute 'grant usage on schema {{ target.schema }}_marts to {{ role }}';
        end if;
    end
    $$
{%- endmacro %}
