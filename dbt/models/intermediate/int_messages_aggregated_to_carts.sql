-- Recovery messages and their clicks rolled up to one row per cart.

{{ int_messages_aggregated_to_carts_sql(inline=true) }}
