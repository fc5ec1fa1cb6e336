"""Publishable keys (allowed origins) and web push subscriptions.

- ``app.api_keys.allowed_origins``: the browser origins (``https://shop.example.com``) a
  publishable key may be used from; the CORS preflight looks an origin up across orgs, hence
  the GIN index on live publishable keys.
- ``app.push_subscriptions``: ``PushSubscription.toJSON()`` as the tracking snippet posts it,
  linked to the snippet's cart (``external_cart_id`` always; ``cart_id`` once the cart
  exists) and to the customer where known. One row per (org, endpoint). The web push provider
  reads it and deletes a row when the push service answers 404/410.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SCHEMA = """
ALTER TABLE app.api_keys ADD COLUMN allowed_origins text[];
CREATE INDEX api_keys_allowed_origins ON app.api_keys USING gin (allowed_origins)
  WHERE role = 'publishable' AND revoked_at IS NULL;

CREATE TABLE app.push_subscriptions (
  org_id uuid NOT NULL REFERENCES app.orgs ON DELETE CASCADE,
  subscription_id uuid NOT NULL DEFAULT gen_random_uuid(),
  cart_id uuid,
  external_cart_id text,
  customer_id uuid,
  email text,
  endpoint text NOT NULL,
  p256dh text NOT NULL,
  auth text NOT NULL,
  expiration_time timestamptz,
  user_agent text,
  key_id uuid,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, subscription_id),
  UNIQUE (org_id, endpoint),
  -- A deleted cart or customer (erasure) unlinks the subscription; org_id stays.
  FOREIGN KEY (org_id, cart_id) REFERENCES app.carts (org_id, cart_id)
    ON DELETE SET NULL (cart_id),
  FOREIGN KEY (org_id, customer_id) REFERENCES app.customers (org_id, customer_id)
    ON DELETE SET NULL (customer_id)
);
CREATE INDEX push_subscriptions_cart ON app.push_subscriptions (org_id, cart_id);
CREATE INDEX push_subscriptions_external_cart
  ON app.push_subscriptions (org_id, external_cart_id);
CREATE INDEX push_subscriptions_customer ON app.push_subscriptions (org_id, customer_id);
CREATE INDEX push_subscriptions_email ON app.push_subscriptions (org_id, email);
"""


def upgrade() -> None:
    op.execute(SCHEMA)
    op.execute("ALTER TABLE app.push_subscriptions ENABLE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY tenant_isolation ON app.push_subscriptions "
        "USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid) "
        "WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)"
    )
    op.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON app.push_subscriptions TO cartrecovery_app")


def downgrade() -> None:
    op.execute("DROP TABLE app.push_subscriptions")
    op.execute("DROP INDEX app.api_keys_allowed_origins")
    op.execute("ALTER TABLE app.api_keys DROP COLUMN allowed_origins")
