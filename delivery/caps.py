"""Frequency caps: at most one message per recipient and channel within the org's cap.

A cap counts messages actually sent (``app.outbox`` rows in status 'sent') to the same address
on the same channel, from any campaign and any cart of the org. A message that would break
the cap is deferred to the instant the cap expires, never dropped.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

import psycopg

DEFAULT_CAPS = {"email": 16 * 3600, "sms": 24 * 3600, "push": 24 * 3600}


def cap_seconds(caps: dict | None, channel: str) -> int:
    """The cap for ``channel`` from the org's ``frequency_caps`` setting (0 = no cap)."""
    value = (caps or {}).get(channel, DEFAULT_CAPS.get(channel, 0))
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return DEFAULT_CAPS.get(channel, 0)


def last_sent_at(
    conn: psycopg.Connection,
    org_id: UUID | str,
    channel: str,
    recipient: str,
    exclude_message_id: UUID | str | None = None,
) -> datetime | None:
    """When a message last went out to ``recipient`` (as the outbox stores it: emails
    lower-cased, phones E.164) on ``channel``; None if never."""
    row = conn.execute(
        """
        SELECT max(sent_at) AS sent_at FROM app.outbox
        WHERE org_id = %s AND channel = %s AND status = 'sent'
          AND recipient = %s AND message_id IS DISTINCT FROM %s
        """,
        (org_id, channel, recipient, exclude_message_id),
    ).fetchone()
    return row["sent_at"] if row else None


def cap_expires_at(
    conn: psycopg.Connection,
    org_id: UUID | str,
    channel: str,
    recipient: str,
    caps: dict | None,
    now: datetime,
    exclude_message_id: UUID | str | None = None,
) -> datetime | None:
    """When ``recipient`` may next get a ``channel`` message, if that is after ``now``;
    None when the cap does not stand in the way."""
    seconds = cap_seconds(caps, channel)
    if seconds <= 0:
        return None
    last = last_sent_at(conn, org_id, channel, recipient, exclude_message_id)
    if last is None:
        return None
    expires = last + timedelta(seconds=seconds)
    return expires if expires > now else None
