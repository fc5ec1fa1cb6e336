-- One row per abandoned cart, with the first order that followed the abandonment within the
-- org's longest attribution window: an order of the cart itself, or of the same customer
-- (email, else customer id, else phone). Touched or not: this is the conversion the holdout
-- comparison and the journeys use.

{{ int_abandonments_joined_to_orders_sql(inline=true) }}
