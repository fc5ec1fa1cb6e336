"""An index on the lower-cased email of ``app.carts`` (``(org_id, lower(email))``).

The warehouse keys a customer by lower-cased email (else customer id, else phone) and an
incremental build rewrites every cart of the customers whose carts or orders changed
(docs/analytics.md, "Incremental and full builds"). ``carts_email`` holds the email as
stored, so a case-insensitive lookup could not use it, and each build read every cart of
the table twice (``int_changes``, ``dim_customers``). The cost is one more index entry per
inserted or updated cart (cart updates were not HOT before either: ``updated_at`` is
indexed, migration 0021).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06
"""

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX IF NOT EXISTS carts_org_lower_email ON app.carts (org_id, lower(email))"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS app.carts_org_lower_email")
