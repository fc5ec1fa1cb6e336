"""Email delivery and engagement events (SendGrid's event webhook) applied to our messages.

Each event is stored once (keyed by ``sg_event_id``) in raw.events and app.message_events;
clicks carry the message's cart (the order path attributes recoveries from them); subscribers
hear of them (``outgoing_webhooks``); unsubscribes, spam reports, bounces and drops suppress
the address, and a group resubscribe lifts a group unsubscribe (``suppressions``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from psycopg.types.json import Jsonb

from . import outgoing_webhooks, suppressions
from .db import Database
from .events import store_event

SOURCE = "sendgrid"
# Event type → suppression reason. A 'blocked' bounce is a temporary refusal, not a bad address.
SUPPRESSING = {
    "unsubscribe": "unsubscribe",
    "group_unsubscribe": "group_unsubscribe",
    "spamreport": "spamreport",
    "bounce": "bounce",
    "dropped": "dropped",
}


def _uuid(value) -> UUID | None:
    try:
        return UUID(str(value)) if value else None
    except ValueError:
        return None


def _occurred_at(event: dict) -> datetime:
    try:
        return datetime.fromtimestamp(int(event["timestamp"]), UTC)
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        return datetime.now(UTC)


def record_events(db: Database, org_id: UUID, events: list[dict]) -> tuple[int, int, int]:
    """Store one org's SendGrid events (each with ``sg_event_id`` and our ``message_id``) in
    one tenant transaction; return (stored, duplicate, ignored: naming no message of ours)."""
    stored = duplicates = ignored = 0
    with db.tenant(org_id) as conn:
        message_ids = list({str(_uuid(e.get("message_id"))) for e in events})
        known = {
            r["message_id"]: r
            for r in conn.execute(
                "SELECT message_id, cart_id FROM app.outbox WHERE message_id = ANY(%s::uuid[])",
                (message_ids,),
            ).fetchall()
        }
        for event in events:
            message = known.get(_uuid(event.get("message_id")))
            if message is None:
                ignored += 1
                continue
            event_type = str(event.get("event") or "unknown")
            occurred_at = _occurred_at(event)
            key = str(event["sg_event_id"])
            event_id = store_event(
                conn,
                org_id=org_id,
                source=SOURCE,
                topic=event_type,
                dedup_key=key,
                payload=event,
                cart_id=message["cart_id"],
                occurred_at=occurred_at,
            )
            if event_id is None:
                duplicates += 1
                continue
            stored += 1
            conn.execute(
                """
                INSERT INTO app.message_events
                  (org_id, event_key, message_id, cart_id, event_type, url, occurred_at, payload)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
                ON CONFLICT (org_id, event_key) DO NOTHING
                """,
                (
                    org_id,
                    key,
                    message["message_id"],
                    message["cart_id"],
                    event_type,
                    event.get("url") if event_type == "click" else None,
                    occurred_at,
                    Jsonb(event),
                ),
            )
            outgoing = outgoing_webhooks.event_type_for("sendgrid", event_type)
            if outgoing:
                outgoing_webhooks.emit(
                    conn,
                    org_id,
                    outgoing,
                    {
                        "message_id": message["message_id"],
                        "cart_id": message["cart_id"],
                        "occurred_at": occurred_at,
                        "url": event.get("url"),
                    },
                )
            _apply_suppression(conn, org_id, event_type, event)
    return stored, duplicates, ignored


def _apply_suppression(conn, org_id: UUID, event_type: str, event: dict) -> None:
    address = str(event.get("email") or "").strip().lower()
    if not address:
        return
    if event_type == "group_resubscribe":
        suppressions.lift(conn, org_id, "email", address, "group_unsubscribe")
        return
    reason = SUPPRESSING.get(event_type)
    if reason is None or (event_type == "bounce" and event.get("type") == "blocked"):
        return
    suppressions.suppress(conn, org_id, "email", address, reason)
