"""The audit log refused twice: the application role may only read and append.

``app.audit_log`` was granted SELECT, INSERT, UPDATE, DELETE like every tenant table (0006),
with a trigger as its only guard against change. The application role (``cartrecovery_app``,
which every request runs as) now loses UPDATE, DELETE and TRUNCATE, so the database refuses
them on privileges before the trigger is reached; the trigger stays, and still guards the
owning role (migrations, operators).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("REVOKE UPDATE, DELETE, TRUNCATE ON app.audit_log FROM cartrecovery_app")


def downgrade() -> None:
    op.execute("GRANT UPDATE, DELETE ON app.audit_log TO cartrecovery_app")
