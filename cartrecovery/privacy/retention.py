"""Retention of raw payloads: ``app.orgs.settings->>'raw_retention_days'`` (default
``DEFAULT_RAW_RETENTION_DAYS``). :func:`purge_raw_events` empties payloads and headers of raw
events older than that (the row, its topic and times stay for counts)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import psycopg

DEFAULT_RAW_RETENTION_DAYS = 365


def purge_raw_events(
    db_or_conn: Any, now: datetime | None = None, *, batch_size: int = 1000
) -> int:
    """Empty payload and headers (``{"purged": true}`` / ``{}``) of raw events older than their
    org's ``raw_retention_days`` (``app.orgs.settings``, default 365). Takes a
    ``Database`` (runs system transactions, batch by batch) or a connection (runs in it).
    Returns how many events were purged. Idempotent: purged rows are not touched again."""
    now = now or datetime.now(UTC)
    statement = """
        WITH due AS (
          SELECT e.org_id, e.event_id, e.received_at
          FROM app.orgs o
          JOIN raw.events e ON e.org_id = o.org_id
            AND e.received_at < %(now)s - make_interval(days => COALESCE(
                  NULLIF(o.settings->>'raw_retention_days', '')::int, %(default)s))
          WHERE e.payload <> '{"purged": true}'::jsonb
          LIMIT %(limit)s
        )
        UPDATE raw.events e SET payload = '{"purged": true}'::jsonb, headers = '{}'::jsonb
        FROM due
        WHERE e.org_id = due.org_id AND e.event_id = due.event_id
          AND e.received_at = due.received_at
    """
    params = {"now": now, "default": DEFAULT_RAW_RETENTION_DAYS, "limit": batch_size}
    if isinstance(db_or_conn, psycopg.Connection):
        total = 0
        while True:
            n = db_or_conn.execute(statement, params).rowcount
            total += n
            if n < batch_size:
                return total
    total = 0
    while True:
        with db_or_conn.system() as conn:
            n = conn.execute(statement, params).rowcount
        total += n
        if n < batch_size:
            return total


_last_purge: float | None = None


def purge_raw_events_if_due(
    db: Any, *, every_seconds: float = 3600.0, now: datetime | None = None
) -> int:
    """:func:`purge_raw_events` at most once per ``every_seconds`` in this process (the
    scheduler tick calls this every few seconds; retention is counted in days)."""
    global _last_purge
    clock = time.monotonic()
    if _last_purge is not None and clock - _last_purge < every_seconds:
        return 0
    _last_purge = clock
    return purge_raw_events(db, now=now)
