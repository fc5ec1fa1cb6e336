-- One row per message that has callbacks or clicks: when it was first delivered, opened and
-- clicked (provider clicks and restore-link clicks alike, not unsubscribe-link clicks), and
-- how often.

{{ int_message_events_aggregated_to_messages_sql(inline=true) }}
