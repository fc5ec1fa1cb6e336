"""The built-in outbox provider: with no provider keys, messages are stored, not sent.

The dashboard's Outbox page lists app.local_mailbox, so a demo shows exactly what a customer
would have received, on every channel: an email's subject, HTML and text; an SMS's body as
Twilio would have sent it (with its opt-out line; the segment count is recorded on the outbox
row as for a real send); a push notification's title, then its body and the link it opens.
"""

from __future__ import annotations

from cartrecovery.db import Database

from .base import OutgoingMessage, SendResult
from .sms_segments import count_segments
from .twilio_sms import record_segments, sms_body
from .webpush import notification_payload


class LocalProvider:
    name = "local"

    def __init__(self, db: Database):
        self.db = db

    def send(self, message: OutgoingMessage) -> SendResult:
        """Store the rendered message once per message id (a second send changes nothing)."""
        subject, html, text, segments = message.subject, message.html, message.text, None
        if message.channel == "sms":
            subject, html, text = None, None, sms_body(message.text)
            segments = count_segments(text).segments
        elif message.channel == "push":
            payload = notification_payload(message)
            subject, html = payload.get("title"), None
            text = "\n\n".join(p for p in (payload.get("body"), payload.get("url")) if p)
        with self.db.tenant(message.org_id) as conn:
            conn.execute(
                """
                INSERT INTO app.local_mailbox
                  (org_id, message_id, channel, recipient, subject, body_html, body_text)
                VALUES (%s, %s, %s, %s, %s, %s, %s)
                ON CONFLICT (org_id, message_id) DO NOTHING
                """,
                (
                    message.org_id,
                    message.message_id,
                    message.channel,
                    message.recipient,
                    subject,
                    html,
                    text,
                ),
            )
            if segments is not None:
                record_segments(conn, message.org_id, message.message_id, segments)
        return SendResult(
            provider=self.name, provider_message_id=message.message_id, segments=segments
        )
