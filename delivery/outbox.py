"""Operational SQL on app.outbox: claiming due rows, finding lost ones, recording outcomes.

Claims use ``FOR UPDATE SKIP LOCKED`` so any number of scheduler processes can run the same
statements without handing one row to two of them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg

from cartrecovery import telemetry

PENDING = ("scheduled", "enqueued")


def claim_due(conn: psycopg.Connection, limit: int) -> list[dict]:
    """Move due 'scheduled' rows to 'enqueued'; return their (org_id, message_id)."""
    return conn.execute(
        """
        WITH due AS (
          SELECT org_id, message_id FROM app.outbox
          WHERE status = 'scheduled' AND due_at <= now()
          ORDER BY due_at
          LIMIT %s
          FOR UPDATE SKIP LOCKED
        )
        UPDATE app.outbox o
        SET status = 'enqueued', enqueued_at = now(), updated_at = now()
        FROM due
        WHERE o.org_id = due.org_id AND o.message_id = due.message_id
        RETURNING o.org_id, o.message_id
        """,
        (limit,),
    ).fetchall()


def claim_stale(conn: psycopg.Connection, older_than: timedelta, limit: int) -> list[dict]:
    """Rows 'enqueued' for longer than ``older_than``: their job may be lost with Redis.

    Their ``enqueued_at`` is bumped so the next look at them is another interval away.
    """
    return conn.execute(
        """
        WITH stale AS (
          SELECT org_id, message_id FROM app.outbox
          WHERE status = 'enqueued' AND enqueued_at < now() - %s
          ORDER BY enqueued_at
          LIMIT %s
          FOR UPDATE SKIP LOCKED
        )
        UPDATE app.outbox o
        SET enqueued_at = now(), updated_at = now()
        FROM stale
        WHERE o.org_id = stale.org_id AND o.message_id = stale.message_id
        RETURNING o.org_id, o.message_id
        """,
        (older_than, limit),
    ).fetchall()


def fail_interrupted(conn: psycopg.Connection, older_than: timedelta, limit: int) -> int:
    """Rows left 'sending' for longer than ``older_than`` (a worker died or timed out during
    the provider call) become 'failed' with reason ``unknown_outcome``. Never re-sent: the
    provider may have accepted the message, and a duplicate is worse than a missing one."""
    rows = conn.execute(
        """
        WITH stuck AS (
          SELECT org_id, message_id FROM app.outbox
          WHERE status = 'sending' AND updated_at < now() - %s
          ORDER BY updated_at
          LIMIT %s
          FOR UPDATE SKIP LOCKED
        )
        UPDATE app.outbox o
        SET status = 'failed', updated_at = now(),
            reason = 'unknown_outcome: the send was interrupted; not re-sent'
        FROM stuck
        WHERE o.org_id = stuck.org_id AND o.message_id = stuck.message_id
        RETURNING o.channel
        """,
        (older_than, limit),
    ).fetchall()
    for row in rows:
        telemetry.count_message(row["channel"], "failed", "unknown_outcome")
    return len(rows)


def lock(conn: psycopg.Connection, message_id: str) -> dict | None:
    """The outbox row plus ``is_due``, locked until the transaction ends (a second job for
    the same message waits here, then sees the first one's outcome)."""
    return conn.execute(
        "SELECT *, due_at <= now() AS is_due FROM app.outbox WHERE message_id = %s FOR UPDATE",
        (message_id,),
    ).fetchone()


def set_status(
    conn: psycopg.Connection, message: dict, status: str, reason: str | None = None
) -> None:
    """Record a decision (held, cancelled, failed...) and its reason on the row."""
    conn.execute(
        "UPDATE app.outbox SET status = %s, reason = %s, decided_at = now(), "
        "updated_at = now() WHERE org_id = %s AND message_id = %s",
        (status, reason, message["org_id"], message["message_id"]),
    )
    telemetry.count_message(message.get("channel"), status, reason)


def defer(conn: psycopg.Connection, message: dict, due_at: datetime, reason: str) -> None:
    """The gate postponed the message: back to 'scheduled' at ``due_at`` with the reason."""
    conn.execute(
        "UPDATE app.outbox SET status = 'scheduled', reason = %s, due_at = %s, "
        "enqueued_at = NULL, deferrals = deferrals + 1, decided_at = now(), updated_at = now() "
        "WHERE org_id = %s AND message_id = %s",
        (reason, due_at, message["org_id"], message["message_id"]),
    )
    telemetry.count_message(message.get("channel"), "scheduled", reason)


def start_sending(conn: psycopg.Connection, message: dict) -> int:
    """Mark the row 'sending' and count the attempt; return the attempt number."""
    row = conn.execute(
        "UPDATE app.outbox SET status = 'sending', reason = NULL, attempts = attempts + 1, "
        "updated_at = now() WHERE org_id = %s AND message_id = %s RETURNING attempts",
        (message["org_id"], message["message_id"]),
    ).fetchone()
    return row["attempts"]


def mark_sent(
    conn: psycopg.Connection, message: dict, provider: str, provider_message_id: str | None
) -> dict:
    """Record the send; returns the row as stored (what ``message.sent`` reports)."""
    row = conn.execute(
        "UPDATE app.outbox SET status = 'sent', reason = NULL, sent_at = now(), provider = %s, "
        "provider_message_id = %s, updated_at = now() WHERE org_id = %s AND message_id = %s "
        "RETURNING *",
        (provider, provider_message_id, message["org_id"], message["message_id"]),
    ).fetchone()
    telemetry.count_message(message.get("channel"), "sent")
    return row


def record_provider_answer(
    conn: psycopg.Connection, message: dict, provider: str | None, code: int | str | None
) -> None:
    """Keep what the provider answered to a send it refused: its name and its error code or
    HTTP status (``delivery_error_code``), beside the reason the row is given."""
    conn.execute(
        "UPDATE app.outbox SET provider = COALESCE(%s, provider), "
        "delivery_error_code = COALESCE(%s, delivery_error_code), "
        "delivery_status_at = CASE WHEN %s::text IS NULL THEN delivery_status_at ELSE now() END, "
        "updated_at = now() WHERE org_id = %s AND message_id = %s",
        (
            provider,
            None if code is None else str(code),
            None if code is None else str(code),
            message["org_id"],
            message["message_id"],
        ),
    )


def reschedule(conn: psycopg.Connection, message: dict, delay: timedelta, reason: str) -> None:
    """Put a row back for the scheduler to enqueue again after ``delay`` (a retry)."""
    conn.execute(
        "UPDATE app.outbox SET status = 'scheduled', reason = %s, due_at = now() + %s, "
        "enqueued_at = NULL, updated_at = now() WHERE org_id = %s AND message_id = %s",
        (reason, delay, message["org_id"], message["message_id"]),
    )
    telemetry.count_message(message.get("channel"), "scheduled", reason)
