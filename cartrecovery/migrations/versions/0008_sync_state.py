"""Historical sync checkpoints (``cartrecovery sync``).

``app.sync_state``: one row per (connection, resource) — e.g. Shopify ``checkouts`` — with
the ``since`` the import started from, the cursor of the next page to fetch (a URL or a page
number), how many objects were imported and when it finished. The row is updated in the
same transaction as the page it follows, so an interrupted sync resumes at the first page
that was not committed.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE app.sync_state (
  org_id uuid NOT NULL REFERENCES app.orgs ON DELETE CASCADE,
  connection_id uuid NOT NULL,
  resource text NOT NULL,
  since timestamptz NOT NULL,
  cursor text,
  imported integer NOT NULL DEFAULT 0,
  pages integer NOT NULL DEFAULT 0,
  started_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  done_at timestamptz,
  PRIMARY KEY (org_id, connection_id, resource),
  FOREIGN KEY (org_id, connection_id) REFERENCES app.connections (org_id, connection_id)
    ON DELETE CASCADE
);
"""


def upgrade() -> None:
    op.execute(SCHEMA)
    table = "app.sync_state"
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON {table} "
        "USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid) "
        "WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)"
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO cartrecovery_app")


def downgrade() -> None:
    op.execute("DROP TABLE app.sync_state")
