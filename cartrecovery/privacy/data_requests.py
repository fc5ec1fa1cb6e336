"""Export bundles prepared for a platform's privacy requests (Shopify
``customers/data_request``), for the merchant to hand over to the data subject."""

from __future__ import annotations

from uuid import UUID

import psycopg

_COLUMNS = "request_id, connection_id, platform, external_request_id, email, phone, created_at"


def list_data_requests(conn: psycopg.Connection, org_id: UUID, limit: int = 500) -> list[dict]:
    """The org's data requests, newest first, without their bundles."""
    return conn.execute(
        f"SELECT {_COLUMNS} FROM app.data_requests WHERE org_id = %s "
        "ORDER BY created_at DESC, request_id LIMIT %s",
        (org_id, limit),
    ).fetchall()


def get_data_request(conn: psycopg.Connection, org_id: UUID, request_id: UUID) -> dict | None:
    """One data request with its export bundle, or None."""
    return conn.execute(
        f"SELECT {_COLUMNS}, bundle FROM app.data_requests WHERE org_id = %s AND request_id = %s",
        (org_id, request_id),
    ).fetchone()
