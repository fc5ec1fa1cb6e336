-- One row per SendGrid event webhook item (processed, delivered, open, click, bounce, ...),
-- as received; the per-message state the marts use is in stg_app__message_events.

with

source as (

    select * from {{ source('raw', 'events') }}
    where source = 'sendgrid'

),

renamed as (

    select
        ---------- ids
        event_id,
        org_id,
        cart_id,
        payload ->> 'sg_event_id' as sendgrid_event_id,
        payload ->> 'sg_message_id' as sendgrid_message_id,

        ---------- strings
        lower(topic) as event_type,
        payload ->> 'url' as url,
        payload ->> 'reason' as reason,

        ---------- booleans
        lower(topic) = 'click' as is_click,
        lower(topic) = 'open' as is_open,

        ---------- timestamps
        coalesce(occurred_at, received_at) as occurred_at,
        received_at

    from source

)

select * from renamed
