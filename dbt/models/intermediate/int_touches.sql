-- One row per touch: a message its recipient clicked (or opened, when the org's
-- attribution_touch is open_or_click). The touch time is the first such interaction.

{{ int_touches_sql(inline=true) }}
