-- One row per (order, eligible touch). A touch is eligible for an order when it is a touch on
-- a message of the order's own cart, or of a cart of the same customer abandoned before the
-- order, and it happened at or before the order and no longer before it than the channel's
-- attribution window (docs/analytics.md, "Semantics").

{{ int_orders_joined_to_touches_sql(inline=true) }}
