"""An index on the message of ``app.message_events`` (``(org_id, message_id)``).

An incremental warehouse build reads the callbacks of the messages it recomputes
(docs/analytics.md, "Incremental and full builds"). Without an index on the message, they
were found through the cart index with arrays of every changed org and cart, and an index
scan takes every combination of two arrays: changes of 300 orgs and 18,000 carts made
5.4 million lookups. By message, each callback is one lookup. The cost is one more index
entry per stored callback (provider webhooks, not the cart path).

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06
"""

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX IF NOT EXISTS message_events_message"
        " ON app.message_events (org_id, message_id)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS app.message_events_message")
