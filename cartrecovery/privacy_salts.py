"""Salts for the hashes that stand in for an address we must not keep in plain: one random
salt per org (``app.privacy_salts``: erased subjects' suppressions and erasure records)."""

from __future__ import annotations

import secrets
from uuid import UUID

import psycopg


def org_salt(conn: psycopg.Connection, org_id: UUID, *, create: bool) -> bytes | None:
    if create:
        conn.execute(
            "INSERT INTO app.privacy_salts (org_id, salt) VALUES (%s, %s) "
            "ON CONFLICT (org_id) DO NOTHING",
            (org_id, secrets.token_bytes(32)),
        )
    row = conn.execute("SELECT salt FROM app.privacy_salts WHERE org_id = %s", (org_id,)).fetchone()
    return bytes(row["salt"]) if row else None
