"""Unsubscribing through the link a message carries: the address is suppressed for that
channel in the org (reason ``unsubscribe``, never lifted), the withdrawal goes to the consent
ledger and the event onto the message, in one transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from psycopg.types.json import Jsonb

from . import suppressions
from .consents import InvalidAddress, normalize_address, record_consent
from .db import Database

SOURCE = "unsubscribe_link"


def message_to_unsubscribe(db: Database, org_id: UUID | str, message_id: UUID | str) -> dict | None:
    """The message a link names (``org_id``, ``message_id``, ``cart_id``, ``channel``,
    ``recipient``), or None when it is gone or holds no address any more."""
    with db.tenant(org_id) as conn:
        row = conn.execute(
            "SELECT org_id, message_id, cart_id, channel, recipient FROM app.outbox "
            "WHERE org_id = %s AND message_id = %s",
            (org_id, message_id),
        ).fetchone()
    return row if row is not None and row["recipient"] else None


def unsubscribe(
    db: Database, message: dict, *, ip: str | None = None, user_agent: str | None = None
) -> None:
    """Unsubscribe the recipient of ``message`` (a row from :func:`message_to_unsubscribe`)
    from its channel. Idempotent: a second click records nothing new but the ledger entry."""
    org_id, channel = message["org_id"], message["channel"]
    try:
        address = normalize_address(channel, message["recipient"])
    except InvalidAddress:
        address = message["recipient"]
    with db.tenant(org_id) as conn:
        suppressions.suppress(conn, org_id, channel, address, "unsubscribe")
        record_consent(
            conn,
            org_id,
            channel=channel,
            address=address,
            status="withdrawn",
            source=SOURCE,
            ip=ip,
            user_agent=user_agent,
        )
        conn.execute(
            "INSERT INTO app.message_events (org_id, event_key, message_id, cart_id, event_type,"
            " occurred_at, payload) VALUES (%s, %s, %s, %s, 'unsubscribe', %s, %s) "
            "ON CONFLICT (org_id, event_key) DO NOTHING",
            (
                org_id,
                f"unsubscribe:{message['message_id']}",
                message["message_id"],
                message["cart_id"],
                datetime.now(UTC),
                Jsonb({"source": SOURCE}),
            ),
        )
