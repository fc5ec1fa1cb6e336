"""BRIN indexes on when events arrived, for the warehouse's incremental builds.

Incremental dbt models read only the events received since their last build (minus a
lookback, dbt/README.md). Monthly partitions prune raw.events to the current month, but
within it, and in app.message_events, that filter scanned every row. Arrival order is
insertion order, so a BRIN index is a few pages and costs inserts nothing measurable.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX events_received_brin ON raw.events USING brin (received_at)")
    op.execute(
        "CREATE INDEX message_events_received_brin ON app.message_events USING brin (received_at)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX raw.events_received_brin, app.message_events_received_brin")
