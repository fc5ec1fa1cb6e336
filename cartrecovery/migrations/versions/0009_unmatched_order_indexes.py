"""Indexes for orders still waiting for their cart.

Every cart event asks whether an order already names it (an order can arrive before its
checkout). Without these partial indexes that check scans all unmatched orders of the org.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX orders_unmatched_checkout ON app.orders (org_id, platform, checkout_token) "
        "WHERE cart_id IS NULL"
    )
    op.execute(
        "CREATE INDEX orders_unmatched_cart_token ON app.orders (org_id, platform, cart_token) "
        "WHERE cart_id IS NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX app.orders_unmatched_checkout, app.orders_unmatched_cart_token")
