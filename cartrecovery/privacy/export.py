"""GDPR portability: everything held about one data subject, JSON-ready."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from .schema import NOT_LINKED, is_linkable, link_condition, search_condition, tables
from .subject import Subject, mentions, resolve_subject


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return None  # secrets and hashes are not the subject's data
    if isinstance(value, timedelta):
        return value.total_seconds()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)  # inet, …


def export_subject(
    conn: psycopg.Connection, org_id: UUID, *, email: str | None = None, phone: str | None = None
) -> dict:
    """Everything held about the subject, JSON-ready: ``{"subject", "exported_at",
    "customers", "carts" (with line items), "orders", "messages", "message_events",
    "suppressions", "raw_events", and one key per other table that can hold rows about a
    subject (consents, push subscriptions, coupons…)}``. The keys are the same for every
    subject (a list is empty when nothing is held). Raises ValueError when neither email nor
    phone is given."""
    subject = resolve_subject(conn, org_id, email=email, phone=phone)
    names = {
        "app.customers": "customers",
        "app.carts": "carts",
        "app.orders": "orders",
        "app.outbox": "messages",
        "app.message_events": "message_events",
    }
    out: dict[str, Any] = {
        "subject": {"emails": sorted(subject.emails), "phones": sorted(subject.phones)},
        "exported_at": datetime.now(UTC).isoformat(),
    }
    for name in names.values():
        out[name] = []
    secret_columns = {"key_hash", "secret_ciphertext", "credentials_ciphertext", "salt"}
    for table in tables(conn):
        if table.qualified in NOT_LINKED or not is_linkable(table):
            continue
        key = names.get(table.qualified, table.name if table.schema == "app" else table.qualified)
        # Every linkable table has its key, empty or not: the answer has the same shape for
        # every subject, whether we hold anything about them or not.
        out[key] = []
        found = link_condition(table, subject)
        if found is None:
            continue
        condition, params = found
        rows = conn.execute(
            sql.SQL("SELECT * FROM {} WHERE org_id = %s AND ").format(table.ident) + condition,
            [org_id, *params],
        ).fetchall()
        out[key] = [
            _jsonable({k: v for k, v in r.items() if k not in secret_columns}) for r in rows
        ]
    out["suppressions"] = _jsonable(
        conn.execute(
            "SELECT channel, address, reason, created_at FROM app.suppressions WHERE org_id = %s "
            "AND (lower(address) = ANY(%s) OR address = ANY(%s))",
            (org_id, list(subject.emails), list(subject.phones)),
        ).fetchall()
    )
    out["raw_events"] = _jsonable(_raw_events_about(conn, org_id, subject))
    return out


def _raw_events_about(conn: psycopg.Connection, org_id: UUID, subject: Subject) -> list[dict]:
    raw = next((t for t in tables(conn) if t.qualified == "raw.events"), None)
    if raw is None:
        return []
    found = search_condition(raw, subject) or (sql.SQL("false"), [])
    condition, params = found
    rows = conn.execute(
        sql.SQL(
            "SELECT event_id, received_at, source, topic, connection_id, cart_id, "
            "occurred_at, payload, headers FROM raw.events WHERE org_id = %s AND "
            "({} OR cart_id = ANY(%s)) ORDER BY received_at"
        ).format(condition),
        [org_id, *params, list(subject.cart_ids)],
    ).fetchall()
    return [
        r
        for r in rows
        if r["cart_id"] in subject.cart_ids
        or mentions(r["payload"], subject)
        or mentions(r["headers"], subject)
    ]
