"""Indexes behind the dashboard's Live tiles (cartrecovery/live_tiles.py).

Each tile reads an index range of one org, never a scan of raw events or of the org's carts:

- carts abandoned in a window: ``carts_org_abandoned`` (partial: only carts that were ever
  abandoned carry ``abandoned_at``, so the index stays small and cheap to maintain on ingest);
- recoveries in a window with their revenue per currency: ``recoveries_org_recovered``
  (covering, an index-only scan);
- active carts: ``carts_status`` (org_id, status, created_at) exists; messages sent:
  ``outbox_sent`` exists; the latest events: ``events_org_received`` exists.

Measured in docs/BENCHMARKS.md ("Dashboard"), bench/dashboard.py.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX IF NOT EXISTS carts_org_abandoned ON app.carts (org_id, abandoned_at) "
        "WHERE abandoned_at IS NOT NULL"
    )
    op.execute(
        "CREATE INDEX IF NOT EXISTS recoveries_org_recovered ON app.recoveries "
        "(org_id, recovered_at) INCLUDE (revenue, currency)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS app.recoveries_org_recovered")
    op.execute("DROP INDEX IF EXISTS app.carts_org_abandoned")
