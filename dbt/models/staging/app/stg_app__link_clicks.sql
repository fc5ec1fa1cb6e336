-- Clicks on our signed restore links: SMS link clicks and push notification clicks (the
-- service worker opens the restore link) arrive here, and email clicks when the provider's
-- own click tracking is off. Stored in app.message_events with payload.source = restore_link.

with

source as (

    select * from {{ source('app', 'message_events') }}
    where event_type = 'click'
        and payload ->> 'source' = 'restore_link'

),

renamed as (

    select
        ---------- ids
        event_key,
        org_id,
        message_id,
        cart_id,
        nullif(payload ->> 'campaign_id', '')::uuid as campaign_id,

        ---------- strings
        payload ->> 'channel' as channel,
        url,

        ---------- timestamps
        occurred_at as clicked_at,
        received_at

    from source

)

select * from renamed
