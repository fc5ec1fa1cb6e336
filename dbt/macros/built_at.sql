{#
  When this build started (dbt's run_started_at, UTC). Marts carry it as built_at: the API
  reports max(built_at) as the as_of of what it read, and the row-count checks compare the
  sources' rows created before it.
#}
{% macro built_at() -%}
    '{{ run_started_at.isoformat() }}'::timestamptz
{%- endmacro %}
