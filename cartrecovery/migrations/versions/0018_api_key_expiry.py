"""API keys may expire: ``app.api_keys.expires_at`` (NULL: never). A rotated key keeps
working until its ``expires_at`` (the grace period), so clients can switch without downtime.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06
"""

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE app.api_keys ADD COLUMN expires_at timestamptz")
    op.execute(
        "ALTER TABLE app.api_keys ADD COLUMN replaced_by uuid, "
        "ADD CONSTRAINT api_keys_replaced_by_fkey FOREIGN KEY (org_id, replaced_by) "
        "REFERENCES app.api_keys (org_id, key_id) ON DELETE SET NULL (replaced_by)"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE app.api_keys DROP COLUMN replaced_by, DROP COLUMN expires_at")
