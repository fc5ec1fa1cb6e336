{#
  Every app table's key starts with org_id (see the migration), so uniqueness is asserted on
  the whole key rather than on the id alone.
#}
{% test unique_together(model, columns) %}

select {{ columns | join(', ') }}, count(*) as n_rows
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1

{% endtest %}
