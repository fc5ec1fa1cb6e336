"""Initial schema: raw events, operational app state, row-level security.

Every tenant table has org_id first in its primary key and unique constraints, so it can be
distributed by org_id without redesign. RLS policies restrict the cartrecovery_app role to
the org set with set_config('app.org_id', ..., true) for each transaction.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TENANT_TABLES = [
    "app.orgs",
    "app.api_keys",
    "app.connections",
    "app.customers",
    "app.carts",
    "app.orders",
    "app.campaigns",
    "app.enrollments",
    "app.outbox",
    "app.local_mailbox",
    "app.message_events",
    "app.recoveries",
    "app.suppressions",
    "raw.event_keys",
    "raw.events",
]

SCHEMA = """
CREATE SCHEMA IF NOT EXISTS raw;
CREATE SCHEMA IF NOT EXISTS app;

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cartrecovery_app') THEN
    CREATE ROLE cartrecovery_app NOLOGIN;
  END IF;
END $$;
GRANT cartrecovery_app TO CURRENT_USER;
GRANT USAGE ON SCHEMA app, raw TO cartrecovery_app;

CREATE TABLE app.orgs (
  org_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL,
  abandonment_timeout_seconds integer NOT NULL DEFAULT 1800
    CHECK (abandonment_timeout_seconds > 0),
  attribution_window_seconds integer NOT NULL DEFAULT 432000
    CHECK (attribution_window_seconds > 0),
  settings jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE app.api_keys (
  org_id uuid NOT NULL REFERENCES app.orgs ON DELETE CASCADE,
  key_id uuid NOT NULL DEFAULT gen_random_uuid(),
  key_hash bytea NOT NULL,
  prefix text NOT NULL,
  role text NOT NULL CHECK (role IN ('admin', 'write', 'read', 'publishable')),
  name text,
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz,
  PRIMARY KEY (org_id, key_id),
  UNIQUE (org_id, key_hash)
);

CREATE TABLE app.connections (
  org_id uuid NOT NULL REFERENCES app.orgs ON DELETE CASCADE,
  connection_id uuid NOT NULL DEFAULT gen_random_uuid(),
  platform text NOT NULL,
  shop_domain text NOT NULL,
  secret_ciphertext bytea NOT NULL,
  credentials_ciphertext bytea,
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled', 'removed')),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, connection_id),
  UNIQUE (org_id, platform, shop_domain)
);
-- Webhooks are routed before the org is known: by platform + shop domain.
CREATE INDEX connections_route ON app.connections (platform, shop_domain) WHERE status = 'active';
CREATE INDEX connections_by_id ON app.connections (connection_id);

CREATE TABLE app.customers (
  org_id uuid NOT NULL REFERENCES app.orgs ON DELETE CASCADE,
  customer_id uuid NOT NULL DEFAULT gen_random_uuid(),
  email text,
  phone text,
  first_name text,
  last_name text,
  external_id text,
  timezone text,
  accepts_marketing boolean,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, customer_id)
);
CREATE UNIQUE INDEX customers_email ON app.customers (org_id, email) WHERE email IS NOT NULL;

CREATE TABLE app.carts (
  org_id uuid NOT NULL REFERENCES app.orgs ON DELETE CASCADE,
  cart_id uuid NOT NULL DEFAULT gen_random_uuid(),
  connection_id uuid,
  platform text NOT NULL,
  external_id text NOT NULL,
  cart_token text,
  checkout_id text,
  customer_id uuid,
  email text,
  phone text,
  currency text,
  total_price numeric(14, 2) NOT NULL DEFAULT 0,
  item_count integer NOT NULL DEFAULT 0,
  line_items jsonb NOT NULL DEFAULT '[]'::jsonb,
  restore_url text,
  status text NOT NULL DEFAULT 'active'
    CHECK (status IN ('active', 'abandoned', 'converted', 'recovered')),
  source_created_at timestamptz,
  source_updated_at timestamptz,
  last_activity_at timestamptz NOT NULL DEFAULT now(),
  abandoned_at timestamptz,
  converted_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, cart_id),
  UNIQUE (org_id, platform, external_id),
  FOREIGN KEY (org_id, customer_id) REFERENCES app.customers (org_id, customer_id)
);
-- The scheduler scans idle active carts across orgs.
CREATE INDEX carts_idle ON app.carts (last_activity_at) WHERE status = 'active';
CREATE INDEX carts_token ON app.carts (org_id, cart_token);
-- Orders name their checkout by token and by the platform's numeric id (Shopify checkout_id).
CREATE INDEX carts_checkout_id ON app.carts (org_id, checkout_id);
CREATE INDEX carts_status ON app.carts (org_id, status, created_at);
CREATE INDEX carts_email ON app.carts (org_id, email);

CREATE TABLE app.orders (
  org_id uuid NOT NULL REFERENCES app.orgs ON DELETE CASCADE,
  order_id uuid NOT NULL DEFAULT gen_random_uuid(),
  connection_id uuid,
  platform text NOT NULL,
  external_id text NOT NULL,
  cart_id uuid,
  customer_id uuid,
  email text,
  checkout_token text,
  cart_token text,
  total_price numeric(14, 2) NOT NULL DEFAULT 0,
  currency text,
  financial_status text,
  ordered_at timestamptz NOT NULL DEFAULT now(),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, order_id),
  UNIQUE (org_id, platform, external_id)
);
CREATE INDEX orders_cart ON app.orders (org_id, cart_id);
CREATE INDEX orders_created ON app.orders (org_id, created_at);

CREATE TABLE app.campaigns (
  org_id uuid NOT NULL REFERENCES app.orgs ON DELETE CASCADE,
  campaign_id uuid NOT NULL DEFAULT gen_random_uuid(),
  name text NOT NULL,
  status text NOT NULL DEFAULT 'draft'
    CHECK (status IN ('draft', 'active', 'paused', 'archived')),
  priority integer NOT NULL DEFAULT 0,
  trigger_conditions jsonb NOT NULL DEFAULT '{}'::jsonb,
  sequence_steps jsonb NOT NULL DEFAULT '[]'::jsonb,
  experiment jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, campaign_id)
);

CREATE TABLE app.enrollments (
  org_id uuid NOT NULL REFERENCES app.orgs ON DELETE CASCADE,
  enrollment_id uuid NOT NULL DEFAULT gen_random_uuid(),
  cart_id uuid NOT NULL,
  campaign_id uuid NOT NULL,
  enrolled_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, enrollment_id),
  UNIQUE (org_id, cart_id),
  FOREIGN KEY (org_id, cart_id) REFERENCES app.carts (org_id, cart_id) ON DELETE CASCADE,
  FOREIGN KEY (org_id, campaign_id) REFERENCES app.campaigns (org_id, campaign_id)
);

-- One row per (cart, campaign step): the unique key is what makes a message exactly-once.
CREATE TABLE app.outbox (
  org_id uuid NOT NULL REFERENCES app.orgs ON DELETE CASCADE,
  message_id uuid NOT NULL DEFAULT gen_random_uuid(),
  enrollment_id uuid,
  cart_id uuid NOT NULL,
  campaign_id uuid NOT NULL,
  step_index integer NOT NULL,
  channel text NOT NULL CHECK (channel IN ('email', 'sms', 'push')),
  recipient text,
  subject text,
  template text,
  due_at timestamptz NOT NULL,
  status text NOT NULL DEFAULT 'scheduled'
    CHECK (status IN ('scheduled', 'enqueued', 'sending', 'sent', 'held', 'cancelled',
                      'failed')),
  reason text,
  attempts integer NOT NULL DEFAULT 0,
  provider text,
  provider_message_id text,
  enqueued_at timestamptz,
  sent_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, message_id),
  UNIQUE (org_id, cart_id, campaign_id, step_index),
  FOREIGN KEY (org_id, cart_id) REFERENCES app.carts (org_id, cart_id) ON DELETE CASCADE
);
CREATE INDEX outbox_due ON app.outbox (due_at) WHERE status = 'scheduled';
CREATE INDEX outbox_enqueued ON app.outbox (enqueued_at) WHERE status = 'enqueued';
CREATE INDEX outbox_cart ON app.outbox (org_id, cart_id);
CREATE INDEX outbox_sent ON app.outbox (org_id, sent_at) WHERE status = 'sent';

-- What the built-in provider "sent": the rendered message, for the dashboard's Outbox page.
CREATE TABLE app.local_mailbox (
  org_id uuid NOT NULL REFERENCES app.orgs ON DELETE CASCADE,
  message_id uuid NOT NULL,
  channel text NOT NULL,
  recipient text NOT NULL,
  subject text,
  body_html text,
  body_text text,
  stored_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, message_id)
);

CREATE TABLE app.message_events (
  org_id uuid NOT NULL REFERENCES app.orgs ON DELETE CASCADE,
  event_key text NOT NULL,
  message_id uuid,
  cart_id uuid,
  event_type text NOT NULL,
  url text,
  occurred_at timestamptz NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now(),
  payload jsonb NOT NULL DEFAULT '{}'::jsonb,
  PRIMARY KEY (org_id, event_key)
);
CREATE INDEX message_events_cart ON app.message_events (org_id, cart_id, event_type, occurred_at);

CREATE TABLE app.recoveries (
  org_id uuid NOT NULL REFERENCES app.orgs ON DELETE CASCADE,
  cart_id uuid NOT NULL,
  order_id uuid NOT NULL,
  message_id uuid,
  campaign_id uuid,
  channel text,
  revenue numeric(14, 2) NOT NULL,
  currency text,
  clicked_at timestamptz,
  recovered_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, cart_id)
);

CREATE TABLE app.suppressions (
  org_id uuid NOT NULL REFERENCES app.orgs ON DELETE CASCADE,
  channel text NOT NULL,
  address text NOT NULL,
  reason text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, channel, address)
);

-- Dedup keys live outside the partitioned table: a unique constraint on a partitioned table
-- must include the partition key, and a redelivery can land in another month.
CREATE TABLE raw.event_keys (
  org_id uuid NOT NULL,
  dedup_key text NOT NULL,
  event_id uuid NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, dedup_key)
);

CREATE TABLE raw.events (
  org_id uuid NOT NULL,
  event_id uuid NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now(),
  source text NOT NULL,
  topic text NOT NULL,
  connection_id uuid,
  cart_id uuid,
  dedup_key text NOT NULL,
  occurred_at timestamptz,
  payload jsonb NOT NULL,
  headers jsonb NOT NULL DEFAULT '{}'::jsonb,
  PRIMARY KEY (org_id, event_id, received_at)
) PARTITION BY RANGE (received_at);
CREATE TABLE raw.events_default PARTITION OF raw.events DEFAULT;
CREATE INDEX events_org_received ON raw.events (org_id, received_at);
CREATE INDEX events_cart ON raw.events (org_id, cart_id);

-- Monthly partitions are created ahead of time (the scheduler calls this daily).
CREATE FUNCTION raw.ensure_month_partition(ts timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  start_at timestamptz := date_trunc('month', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
  name text := 'events_' || to_char(start_at AT TIME ZONE 'UTC', 'YYYY_MM');
BEGIN
  IF to_regclass('raw.' || name) IS NULL THEN
    EXECUTE format(
      'CREATE TABLE raw.%I PARTITION OF raw.events FOR VALUES FROM (%L) TO (%L)',
      name, start_at, start_at + interval '1 month');
  END IF;
END $$;

SELECT raw.ensure_month_partition(now() + make_interval(months => m))
FROM generate_series(-1, 3) AS m;
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
    op.execute("DROP SCHEMA app CASCADE; DROP SCHEMA raw CASCADE;")
