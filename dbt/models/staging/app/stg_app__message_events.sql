with

source as (

    select * from {{ source('app', 'message_events') }}

),

renamed as (

    select
        ---------- ids
        event_key,
        org_id,
        message_id,
        cart_id,

        ---------- strings
        lower(event_type) as event_type,
        url,

        ---------- booleans
        lower(event_type) = 'click' as is_click,
        -- A tracked click on the email's unsubscribe link (our /u/<token>) is no interest in
        -- the cart: it must not become a touch.
        lower(event_type) = 'click' and coalesce(url ~ '^https?://[^/]+/u/', false)
            as is_unsubscribe_click,

        ---------- timestamps
        occurred_at,
        received_at

    from source

)

select * from renamed
