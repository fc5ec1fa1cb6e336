-- One row per Twilio callback: message status callbacks (topic status.<status>) and inbound
-- SMS (topic inbound or inbound.<keyword>).

with

source as (

    select * from {{ source('raw', 'events') }}
    where source = 'twilio'

),

renamed as (

    select
        ---------- ids
        event_id,
        org_id,
        cart_id,
        coalesce(
            payload ->> 'MessageSid', payload ->> 'SmsMessageSid', payload ->> 'SmsSid'
        ) as twilio_message_sid,

        ---------- strings
        topic,
        case
            when topic like 'status.%' then 'status'
            when topic like 'inbound%' then 'inbound'
            else 'other'
        end as callback_kind,
        case when topic like 'status.%' then substr(topic, 8) end as message_status,
        case when topic like 'inbound.%' then substr(topic, 9) end as keyword,
        payload ->> 'ErrorCode' as error_code,

        ---------- timestamps
        coalesce(occurred_at, received_at) as occurred_at,
        received_at

    from source

)

select * from renamed
