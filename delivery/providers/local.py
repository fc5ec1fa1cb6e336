"""The built-in outbox provider: with no provider keys, messages are stored, not sent.

The dashboard's Outbox page lists app.local_mailbox, so a demo shows exactly what a customer
would have received.
"""

from __future__ import annotations

from cartrecovery.db import Database

from .base import OutgoingMessage, SendResult


class LocalProvider:
    name = "local"

    def __init__(self, db: Database):
        self.db = db

    def send(self, message: OutgoingMessage) -> SendResult:
        """Store the rendered message once per message id (a second send changes nothing)."""
        with self.db.tenant(message.org_id) as conn:
            conn.execute(
                """
                INSERT INTO app.local_mailbox
                  (org_id, message_id, channel, recipient, subject, body_html, body_text)
                VALUES (%s, %s, %s, %s, %s, %s, %s)
                ON CONFLICT (org_id, message_id) DO NOTHING
                """,
                (message.org_id, message.message_id, message.channel, message.recipient,
                 message.subject, message.html, message.text),
            )
        return SendResult(provider=self.name, provider_message_id=message.message_id)
