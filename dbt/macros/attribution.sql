{#
  Who a cart or an order belongs to, for matching an order to its customer's earlier
  abandoned carts: the email, else the store's customer id, else the phone. NULL when none is
  known (such an order only matches its own cart).
#}
{% macro customer_key(email, customer_id, phone) -%}
    coalesce(
        'email:' || nullif(lower({{ email }}), ''),
        'customer:' || {{ customer_id }}::text,
        'phone:' || nullif({{ phone }}, '')
    )
{%- endmacro %}

{#
  The attribution window of a channel in seconds, from a row of int_org_attribution_settings:
  the channel's own window, or the org's attribution_window_seconds for any other channel.
#}
{% macro channel_window(channel, settings) -%}
    case {{ channel }}
        {%- for channel_name in var('attribution_window_defaults') %}
        when '{{ channel_name }}' then {{ settings }}.window_{{ channel_name }}_seconds
        {%- endfor %}
        else {{ settings }}.default_window_seconds
    end
{%- endmacro %}
