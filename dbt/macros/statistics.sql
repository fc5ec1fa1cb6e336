{#
  The 97.5% quantile of Student's t with `df` degrees of freedom, for 95% intervals: the
  Cornish-Fisher expansion around the normal quantile (within 0.003 of the exact value from
  5 degrees of freedom, 0.025 at 3). SQL has no t distribution; the API may recompute it
  with scipy.stats from the sums the marts keep.
#}
{% macro t_quantile_975(df) -%}
    (
        1.959964
        + (power(1.959964, 3) + 1.959964) / (4 * ({{ df }}))
        + (5 * power(1.959964, 5) + 16 * power(1.959964, 3) + 3 * 1.959964)
        / (96 * power({{ df }}, 2))
        + (
            3 * power(1.959964, 7) + 19 * power(1.959964, 5)
            + 17 * power(1.959964, 3) - 15 * 1.959964
        )
        / (384 * power({{ df }}, 3))
    )
{%- endmacro %}
