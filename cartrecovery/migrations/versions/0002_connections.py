"""Store connections: secret rotation, credentials, status changes; Shopify data requests;
closed checkouts; order freshness.

- ``app.connections``: the previous webhook secret stays valid until
  ``previous_secret_expires_at`` (rotation grace); why and when the status last changed.
  Platform credentials already live encrypted in ``credentials_ciphertext`` (0001).
- ``app.carts.closed_at``: the platform closed the checkout (Shopify ``checkouts/delete``);
  a closed cart gets no more messages and is kept out of abandonment.
- ``app.orders.source_updated_at``: the platform's time of the order state we hold, so a
  late, older order event never rolls ``financial_status`` back.
- ``app.data_requests``: export bundles prepared for a platform's privacy data request
  (Shopify ``customers/data_request``), for the merchant to fetch and hand over.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = """
ALTER TABLE app.connections
  ADD COLUMN previous_secret_ciphertext bytea,
  ADD COLUMN previous_secret_expires_at timestamptz,
  ADD COLUMN secret_rotated_at timestamptz,
  ADD COLUMN status_reason text,
  ADD COLUMN status_changed_at timestamptz;

ALTER TABLE app.carts ADD COLUMN closed_at timestamptz;
-- Disconnect/uninstall cancels the pending messages of one store's carts.
CREATE INDEX carts_connection ON app.carts (org_id, connection_id);

ALTER TABLE app.orders ADD COLUMN source_updated_at timestamptz;

CREATE TABLE app.data_requests (
  org_id uuid NOT NULL REFERENCES app.orgs ON DELETE CASCADE,
  request_id uuid NOT NULL DEFAULT gen_random_uuid(),
  connection_id uuid,
  platform text NOT NULL,
  external_request_id text,
  email text,
  phone text,
  bundle jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, request_id)
);
-- One bundle per platform request id (a redelivered request does not prepare it twice).
CREATE UNIQUE INDEX data_requests_external
  ON app.data_requests (org_id, platform, external_request_id)
  WHERE external_request_id IS NOT NULL;
CREATE INDEX data_requests_created ON app.data_requests (org_id, created_at);
"""


def upgrade() -> None:
    op.execute(SCHEMA)
    table = "app.data_requests"
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON {table} "
        "USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid) "
        "WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)"
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO cartrecovery_app")


def downgrade() -> None:
    op.execute("""
DROP TABLE app.data_requests;
ALTER TABLE app.orders DROP COLUMN source_updated_at;
DROP INDEX app.carts_connection;
ALTER TABLE app.carts DROP COLUMN closed_at;
ALTER TABLE app.connections
  DROP COLUMN previous_secret_ciphertext,
  DROP COLUMN previous_secret_expires_at,
  DROP COLUMN secret_rotated_at,
  DROP COLUMN status_reason,
  DROP COLUMN status_changed_at;
""")
