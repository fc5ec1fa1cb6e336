"""The applier: webhook state applied after the acknowledgement (docs/architecture.md,
"Data flow").

- ``raw.pending_changes``: one row per acknowledged event whose cart change is not applied
  yet (the "unapplied marker"), written in the same transaction as the raw event. ``change``
  is the canonical cart change, msgspec-encoded (``cartrecovery.applier``). Appliers claim
  rows with ``FOR UPDATE SKIP LOCKED`` and delete them in the transaction that applies them,
  so any number of processes can apply safely. Tenant table (RLS, org_id first).
- ``raw.applier_batches``: one row per applied batch with each event's lag (ms from receipt
  to apply), for ``/api/health/applier`` and the benchmark. Not tenant data (no org, no
  content); rows older than a day are purged by the applier.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

ORG_ID = "NULLIF(current_setting('app.org_id', true), '')::uuid"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE raw.pending_changes (
          org_id uuid NOT NULL,
          event_id uuid NOT NULL,
          seq bigint GENERATED ALWAYS AS IDENTITY,
          received_at timestamptz NOT NULL DEFAULT now(),
          platform text NOT NULL,
          external_id text NOT NULL,
          change bytea NOT NULL,
          PRIMARY KEY (org_id, event_id)
        );
        ALTER TABLE raw.pending_changes ENABLE ROW LEVEL SECURITY;
        GRANT SELECT, INSERT, UPDATE, DELETE ON raw.pending_changes TO cartrecovery_app;
        CREATE TABLE raw.applier_batches (
          batch_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
          applied_at timestamptz NOT NULL DEFAULT clock_timestamp(),
          lags_ms real[] NOT NULL
        );
        CREATE INDEX applier_batches_applied ON raw.applier_batches (applied_at);
        GRANT SELECT, INSERT ON raw.applier_batches TO cartrecovery_app;
        """
    )
    op.execute(
        f"CREATE POLICY tenant_isolation ON raw.pending_changes "
        f"USING (org_id = {ORG_ID}) WITH CHECK (org_id = {ORG_ID})"
    )


def downgrade() -> None:
    op.execute("DROP TABLE raw.applier_batches; DROP TABLE raw.pending_changes;")
