"""SMS delivery receipts (Twilio status callbacks) applied to the outbox.

A callback finds its message by the ``org_id``/``message_id`` our provider put in the
(signed) callback URL, else by the Twilio SID. Each (SID, status) is stored once in raw.events
and app.message_events; the message's ``delivery_status`` only ever moves forward, since
callbacks can arrive out of order. Error codes that say the number cannot be texted again
suppress it (``cartrecovery.suppressions``).
"""

from __future__ import annotations

from uuid import UUID

from psycopg.types.json import Jsonb

from . import outgoing_webhooks, suppressions
from .db import Database
from .events import store_event

SOURCE = "twilio"
# Twilio message statuses in the order a message moves through them; a callback may only
# move a message to a higher rank. Terminal outcomes share a rank (the first one stands),
# 'read' (WhatsApp/RCS) comes after delivery.
STATUS_RANK = {
    "accepted": 0,
    "scheduled": 0,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "delivered": 4,
    "undelivered": 4,
    "failed": 4,
    "canceled": 4,
    "partially_delivered": 4,
    "read": 5,
}
# Statuses recorded as message events (what analytics and outgoing webhooks read).
MESSAGE_EVENT_TYPES = {"sent", "delivered", "undelivered", "failed"}
# Delivery error codes that say the recipient cannot be texted again.
SUPPRESSING_ERRORS = {"21610": "stop", "30005": "invalid_number", "30006": "invalid_number"}


def locate_message(
    db: Database, org_id: UUID | None, message_id: UUID | None, sid: str
) -> tuple[UUID, UUID] | None:
    """(org, message) a status callback is about, from the callback URL or the SID."""
    if org_id is not None:
        with db.tenant(org_id) as conn:
            row = conn.execute(
                "SELECT message_id FROM app.outbox WHERE org_id = %s "
                "AND (message_id = %s OR provider_message_id = %s) "
                "ORDER BY (message_id = %s) DESC LIMIT 1",
                (org_id, message_id, sid, message_id),
            ).fetchone()
        return (org_id, row["message_id"]) if row else None
    with db.system() as conn:
        row = conn.execute(
            "SELECT org_id, message_id FROM app.outbox "
            "WHERE provider_message_id = %s AND channel = 'sms' LIMIT 1",
            (sid,),
        ).fetchone()
    return (row["org_id"], row["message_id"]) if row else None


def record_status(
    db: Database,
    org_id: UUID,
    message_id: UUID,
    *,
    sid: str,
    status: str,
    error_code: str | None,
    payload: dict,
    headers: dict,
) -> dict:
    """Store the status once and move the message forward. Returns ``{"stored",
    "duplicate", "delivery_status"}``, or ``{"stored": False, "duplicate": False, "ignored":
    "unknown_message"}`` when the message is gone (its cart was erased)."""
    key = f"{sid}:{status}"
    with db.tenant(org_id) as conn:
        message = conn.execute(
            "SELECT message_id, cart_id, recipient, delivery_status FROM app.outbox "
            "WHERE org_id = %s AND message_id = %s FOR UPDATE",
            (org_id, message_id),
        ).fetchone()
        if message is None:
            return {"stored": False, "duplicate": False, "ignored": "unknown_message"}
        event_id = store_event(
            conn,
            org_id=org_id,
            source=SOURCE,
            topic=f"status.{status}",
            dedup_key=key,
            payload=payload,
            headers=headers,
            cart_id=message["cart_id"],
        )
        if event_id is None:
            return {
                "stored": False,
                "duplicate": True,
                "delivery_status": message["delivery_status"],
            }
        if status in MESSAGE_EVENT_TYPES:
            conn.execute(
                """
                INSERT INTO app.message_events
                  (org_id, event_key, message_id, cart_id, event_type, occurred_at, payload)
                VALUES (%s, %s, %s, %s, %s, now(), %s)
                ON CONFLICT (org_id, event_key) DO NOTHING
                """,
                (org_id, key, message_id, message["cart_id"], status, Jsonb(payload)),
            )
            outgoing = outgoing_webhooks.event_type_for("twilio", status)
            if outgoing:
                outgoing_webhooks.emit(
                    conn,
                    org_id,
                    outgoing,
                    {"message_id": message_id, "cart_id": message["cart_id"], "status": status},
                )
        delivery_status = message["delivery_status"]
        if STATUS_RANK.get(status, -1) > STATUS_RANK.get(delivery_status or "", -1):
            delivery_status = status
            conn.execute(
                "UPDATE app.outbox SET delivery_status = %s, delivery_status_at = now(), "
                "delivery_error_code = %s WHERE org_id = %s AND message_id = %s",
                (status, error_code, org_id, message_id),
            )
        reason = SUPPRESSING_ERRORS.get(str(error_code or ""))
        if reason and message["recipient"]:
            suppressions.suppress(conn, org_id, "sms", message["recipient"], reason)
    return {"stored": True, "duplicate": False, "delivery_status": delivery_status}
