{#
  Casts for values taken out of platform payloads. Payloads are stored as received, so a
  malformed field must become NULL instead of failing the whole build.
#}

{% macro safe_numeric(expr) -%}
    case
        when ({{ expr }}) ~ '^\s*-?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?\s*$'
            then ({{ expr }})::numeric
    end
{%- endmacro %}

{% macro safe_timestamptz(expr) -%}
    case
        when ({{ expr }}) ~ '^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])([T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d+)?)?)?(Z|z|[+-]\d{2}(:?\d{2})?)?$'
            then ({{ expr }})::timestamptz
    end
{%- endmacro %}

{# Length of a jsonb array, 0 when the value is missing or not an array. #}
{% macro jsonb_array_size(expr) -%}
    case when jsonb_typeof({{ expr }}) = 'array' then jsonb_array_length({{ expr }}) else 0 end
{%- endmacro %}
