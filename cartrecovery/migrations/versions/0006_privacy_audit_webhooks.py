"""Erasure records, append-only audit log, outgoing webhook subscriptions.

- ``app.privacy_salts``: one random salt per org, for the hashes that stand in for an erased
  subject (suppressions that must survive the erasure, erasure records).
- ``app.erasure_requests``: who asked to erase whom (a salted hash, never the address), why,
  and how many rows of each table changed.
- ``app.audit_log``: every API and admin action. Append-only: a trigger refuses DELETE and
  TRUNCATE always, and UPDATE unless the transaction runs an erasure (``app.erasure`` = 'on';
  GDPR erasure outranks the log, and the log is written to hold no PII anyway). It has no
  foreign key to app.orgs so that the log outlives a deleted org.
- ``app.webhook_subscriptions`` / ``app.webhook_deliveries``: outgoing signed webhooks; a
  delivery row is written in the transaction of the change it reports (outbox pattern), and
  Postgres (``next_attempt_at``) drives retries.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TENANT_TABLES = [
    "app.privacy_salts",
    "app.erasure_requests",
    "app.audit_log",
    "app.webhook_subscriptions",
    "app.webhook_deliveries",
]

SCHEMA = """
CREATE TABLE app.privacy_salts (
  org_id uuid NOT NULL REFERENCES app.orgs ON DELETE CASCADE,
  salt bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id)
);

CREATE TABLE app.erasure_requests (
  org_id uuid NOT NULL REFERENCES app.orgs ON DELETE CASCADE,
  erasure_id uuid NOT NULL DEFAULT gen_random_uuid(),
  kind text NOT NULL CHECK (kind IN ('subject', 'connection')),
  subject_hash text NOT NULL,
  requested_by text NOT NULL,
  reason text NOT NULL,
  counts jsonb NOT NULL DEFAULT '{}'::jsonb,
  providers jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, erasure_id)
);

CREATE TABLE app.audit_log (
  org_id uuid NOT NULL,
  audit_id uuid NOT NULL DEFAULT gen_random_uuid(),
  actor text NOT NULL,
  action text NOT NULL,
  target text,
  status_code integer,
  ip text,
  details jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, audit_id)
);
CREATE INDEX audit_log_created ON app.audit_log (org_id, created_at);

CREATE FUNCTION app.audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND current_setting('app.erasure', true) = 'on' THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'app.audit_log is append-only: % refused', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON app.audit_log
  FOR EACH ROW EXECUTE FUNCTION app.audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON app.audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION app.audit_log_append_only();

CREATE TABLE app.webhook_subscriptions (
  org_id uuid NOT NULL REFERENCES app.orgs ON DELETE CASCADE,
  subscription_id uuid NOT NULL DEFAULT gen_random_uuid(),
  url text NOT NULL,
  events text[] NOT NULL,
  description text,
  secret_ciphertext bytea NOT NULL,
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
  disabled_reason text,
  disabled_at timestamptz,
  consecutive_failures integer NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, subscription_id)
);
CREATE INDEX webhook_subscriptions_events ON app.webhook_subscriptions USING gin (events)
  WHERE status = 'active';

CREATE TABLE app.webhook_deliveries (
  org_id uuid NOT NULL REFERENCES app.orgs ON DELETE CASCADE,
  delivery_id uuid NOT NULL DEFAULT gen_random_uuid(),
  subscription_id uuid NOT NULL,
  event_id uuid NOT NULL,
  event_type text NOT NULL,
  cart_id uuid,
  body jsonb NOT NULL,
  status text NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'enqueued', 'delivered', 'failed', 'cancelled')),
  attempts integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  enqueued_at timestamptz,
  last_status_code integer,
  last_error text,
  delivered_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, delivery_id),
  UNIQUE (org_id, subscription_id, event_id),
  FOREIGN KEY (org_id, subscription_id)
    REFERENCES app.webhook_subscriptions (org_id, subscription_id) ON DELETE CASCADE
);
CREATE INDEX webhook_deliveries_due ON app.webhook_deliveries (next_attempt_at)
  WHERE status = 'pending';
CREATE INDEX webhook_deliveries_enqueued ON app.webhook_deliveries (enqueued_at)
  WHERE status = 'enqueued';
CREATE INDEX webhook_deliveries_cart ON app.webhook_deliveries (org_id, cart_id);
"""


def upgrade() -> None:
    op.execute(SCHEMA)
    for table in TENANT_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} "
            "USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid) "
            "WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)"
        )
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO cartrecovery_app")


def downgrade() -> None:
    op.execute(
        "DROP TABLE IF EXISTS app.webhook_deliveries, app.webhook_subscriptions, "
        "app.audit_log, app.erasure_requests, app.privacy_salts CASCADE; "
        "DROP FUNCTION IF EXISTS app.audit_log_append_only();"
    )
