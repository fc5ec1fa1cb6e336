"""The device class of the shopper's browser on each cart: ``app.carts.device``
(``desktop``/``mobile``/``tablet``; NULL: unknown), from the tracking request's User-Agent,
an explicit ``cart_data.device``, or a platform payload's user agent (cartrecovery/devices.py).
The models segment by it (docs/models.md).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06
"""

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE app.carts ADD COLUMN device text "
        "CONSTRAINT carts_device_check CHECK (device IN ('desktop', 'mobile', 'tablet'))"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE app.carts DROP COLUMN device")
