"""Unique single-use discount codes.

One row per code the platform issued: for a message that offered a discount (at most one per
message, so a retried job reuses it), created in the store through its API or, for stores
without one, only here. ``redeemed_at`` is set when an order carries the code.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE app.coupons (
  org_id uuid NOT NULL REFERENCES app.orgs ON DELETE CASCADE,
  coupon_id uuid NOT NULL DEFAULT gen_random_uuid(),
  message_id uuid,
  cart_id uuid,
  code text NOT NULL CHECK (code <> ''),
  type text NOT NULL CHECK (type IN ('percentage', 'fixed_amount', 'free_shipping')),
  value numeric(14, 2) NOT NULL DEFAULT 0 CHECK (value >= 0),
  currency text,
  expires_at timestamptz,
  platform text NOT NULL,
  connection_id uuid,
  platform_ids jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  redeemed_at timestamptz,
  order_id uuid,
  PRIMARY KEY (org_id, coupon_id),
  UNIQUE (org_id, code),
  UNIQUE (org_id, message_id)
);
-- Orders name codes in any case (Shopify matches codes case-insensitively).
CREATE INDEX coupons_code_upper ON app.coupons (org_id, upper(code));
CREATE INDEX coupons_cart ON app.coupons (org_id, cart_id);
"""


def upgrade() -> None:
    op.execute(SCHEMA)
    op.execute("ALTER TABLE app.coupons ENABLE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY tenant_isolation ON app.coupons "
        "USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid) "
        "WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)"
    )
    op.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON app.coupons TO cartrecovery_app")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS app.coupons")
