"""What the dashboard's Compliance page shows: consent and suppression counts and the
erasure and export requests of one org (the audit log is ``audit.entries``).

Consent counts are of each address's latest record per channel (a withdrawal after a grant
counts as withdrawn), as the delivery gate reads them.
"""

from __future__ import annotations

from uuid import UUID

import psycopg


def consent_counts(conn: psycopg.Connection, org_id: UUID | str) -> list[dict]:
    """``{channel, status, addresses}`` over each address's latest consent record."""
    rows = conn.execute(
        """
        SELECT channel, status, count(*) AS addresses
        FROM (SELECT DISTINCT ON (channel, address) channel, status
              FROM app.consents WHERE org_id = %s
              ORDER BY channel, address, recorded_at DESC) latest
        GROUP BY channel, status ORDER BY channel, status
        """,
        (org_id,),
    ).fetchall()
    return [dict(r) for r in rows]


def suppression_counts(conn: psycopg.Connection, org_id: UUID | str) -> list[dict]:
    """``{channel, reason, addresses}`` of the org's suppressions."""
    rows = conn.execute(
        """
        SELECT channel, reason, count(*) AS addresses FROM app.suppressions
        WHERE org_id = %s GROUP BY channel, reason ORDER BY channel, reason
        """,
        (org_id,),
    ).fetchall()
    return [dict(r) for r in rows]


def privacy_requests(conn: psycopg.Connection, org_id: UUID | str, limit: int = 200) -> list[dict]:
    """Erasure and export (data) requests, newest first: ``{kind, requested_by, status,
    details, created_at}``. An erasure runs when it is requested, so a stored one is done;
    an export is ready once its bundle is stored."""
    rows = conn.execute(
        """
        SELECT * FROM (
          SELECT 'erasure: ' || kind AS kind, requested_by, 'done' AS status,
                 counts::text AS details, created_at
          FROM app.erasure_requests WHERE org_id = %(org)s
          UNION ALL
          SELECT 'export: ' || coalesce(platform, 'api'), coalesce(external_request_id, ''),
                 CASE WHEN bundle IS NULL THEN 'pending' ELSE 'ready' END, '', created_at
          FROM app.data_requests WHERE org_id = %(org)s
        ) r ORDER BY created_at DESC LIMIT %(limit)s
        """,
        {"org": org_id, "limit": limit},
    ).fetchall()
    return [dict(r) for r in rows]
