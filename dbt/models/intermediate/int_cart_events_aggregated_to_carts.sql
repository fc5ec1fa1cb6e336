-- Inbound store events (Shopify webhooks, tracking API) rolled up to the app cart they
-- updated.

{{ int_cart_events_aggregated_to_carts_sql(inline=true) }}
