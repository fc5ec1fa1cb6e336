"""The audit log: who did what to which resource of an org, append-only.

``app.audit_log`` refuses UPDATE, DELETE and TRUNCATE twice: the application role holds only
SELECT and INSERT on it (migration 0010), and a trigger refuses them for every role, the owner
included (0006). So a row, once written, is evidence. The API records every changing request
and every read of personal data (``ingest/audit.py``); the CLI and other admin paths call
:func:`record`.

Rows must hold no personal data of shoppers (an erasure would have to rewrite them): actors
are key ids or operator names, targets are resource ids, details are ids, counts and field
names — never addresses or request bodies.
"""

from __future__ import annotations

import getpass
import logging
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from .db import Database

log = logging.getLogger(__name__)

INSERT = (
    "INSERT INTO app.audit_log (org_id, actor, action, target, status_code, ip, details) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING audit_id"
)


def cli_actor() -> str:
    """``cli:<operating system user>`` for actions taken through the ``cartrecovery`` CLI."""
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = "unknown"
    return f"cli:{user}"


def insert(
    conn: psycopg.Connection,
    org_id: UUID | str,
    actor: str,
    action: str,
    target: str | None = None,
    details: dict | None = None,
    *,
    status_code: int | None = None,
    ip: str | None = None,
) -> UUID:
    """Append one audit row inside the caller's transaction (tenant or system)."""
    row = conn.execute(
        INSERT,
        (
            org_id,
            actor,
            action,
            None if target is None else str(target),
            status_code,
            ip,
            Jsonb(details or {}),
        ),
    ).fetchone()
    return row["audit_id"]


def record(
    db: Database,
    org_id: UUID | str,
    actor: str,
    action: str,
    target: str | None = None,
    details: dict | None = None,
    *,
    status_code: int | None = None,
    ip: str | None = None,
) -> UUID:
    """Append one audit row in a transaction of its own, as the org's tenant.

    ``actor``: ``api_key:<key id>``, ``cli:<user>`` (see :func:`cli_actor`) or ``system``;
    ``action``: ``"PATCH /api/v1/settings"``, ``"orgs.create"``, ``"connections.add"``…;
    ``target``: the resource id. Returns the audit id. Raises on failure: callers that must
    not fail because of the audit (the HTTP hook) catch and log."""
    with db.tenant(org_id) as conn:
        return insert(conn, org_id, actor, action, target, details, status_code=status_code, ip=ip)


def entries(conn: psycopg.Connection, org_id: UUID | str, *, limit: int = 100) -> list[dict]:
    """The org's latest audit rows, newest first."""
    return conn.execute(
        "SELECT audit_id, actor, action, target, status_code, ip, details, created_at "
        "FROM app.audit_log WHERE org_id = %s ORDER BY created_at DESC LIMIT %s",
        (org_id, limit),
    ).fetchall()


def safe_details(values: dict[str, Any]) -> dict[str, Any]:
    """Keep only values that cannot carry personal data: numbers, booleans, ids."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, bool | int | float) or value is None:
            out[key] = value
        elif isinstance(value, UUID):
            out[key] = str(value)
        elif isinstance(value, str) and _is_uuid(value):
            out[key] = value
    return out


def _is_uuid(text: str) -> bool:
    try:
        UUID(text)
    except ValueError:
        return False
    return True
