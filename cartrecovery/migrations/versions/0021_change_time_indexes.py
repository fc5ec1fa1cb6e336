"""Indexes on the change time of ``app.carts`` and ``app.outbox`` (``updated_at``).

An incremental warehouse build looks for the carts and messages changed since the last build
(docs/analytics.md, "Incremental and full builds"): without these indexes it scans both
tables whole each time, a cost that grows with the history kept rather than with what
changed. Both columns change with nearly every update of their row, which already touches
other indexed columns (``last_activity_at``, ``status``), so these updates were not HOT
before either: the cost is one more index entry per updated row.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06
"""

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX IF NOT EXISTS carts_updated ON app.carts (updated_at)")
    op.execute("CREATE INDEX IF NOT EXISTS outbox_updated ON app.outbox (updated_at)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS app.outbox_updated")
    op.execute("DROP INDEX IF EXISTS app.carts_updated")
