"""Consent ledger, campaign rules and compliance state.

- ``app.consents``: an append-only ledger of consent grants and withdrawals per channel and
  address. A trigger refuses UPDATE and DELETE; the one exception is GDPR erasure, which runs
  ``SET LOCAL app.erasure = 'on'`` (``set_config('app.erasure', 'on', true)``) in its
  transaction before deleting a subject's rows.
- ``app.campaigns.reentry_cooldown_seconds``: a customer enrolled in a campaign is not enrolled
  in it again within this many seconds.
- ``app.outbox.variant`` (the step variant assigned to the cart), ``deferrals`` (how often the
  gate postponed the message) and ``decided_at`` (when the gate last decided).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE app.consents (
  org_id uuid NOT NULL REFERENCES app.orgs ON DELETE CASCADE,
  consent_id uuid NOT NULL DEFAULT gen_random_uuid(),
  channel text NOT NULL CHECK (channel IN ('email', 'sms', 'push')),
  address text NOT NULL,
  status text NOT NULL CHECK (status IN ('granted', 'withdrawn')),
  source text NOT NULL,
  wording text,
  ip inet,
  user_agent text,
  recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (org_id, consent_id)
);
-- The gate reads the latest entry for one address on one channel.
CREATE INDEX consents_latest ON app.consents (org_id, channel, address, recorded_at DESC);

CREATE FUNCTION app.consents_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  -- Erasure (GDPR art. 17) is the only reason a ledger row may disappear; it says so by
  -- setting app.erasure for its own transaction.
  IF TG_OP = 'DELETE' AND current_setting('app.erasure', true) = 'on' THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'app.consents is append-only: % refused', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER consents_append_only
  BEFORE UPDATE OR DELETE ON app.consents
  FOR EACH ROW EXECUTE FUNCTION app.consents_append_only();
CREATE TRIGGER consents_no_truncate
  BEFORE TRUNCATE ON app.consents
  FOR EACH STATEMENT EXECUTE FUNCTION app.consents_append_only();

ALTER TABLE app.campaigns
  ADD COLUMN reentry_cooldown_seconds integer CHECK (reentry_cooldown_seconds >= 0);

ALTER TABLE app.outbox
  ADD COLUMN variant text,
  ADD COLUMN deferrals integer NOT NULL DEFAULT 0,
  ADD COLUMN decided_at timestamptz;
-- Frequency caps and "one SMS per abandonment" look up the last messages sent to an address.
CREATE INDEX outbox_recipient_sent ON app.outbox (org_id, channel, recipient, sent_at)
  WHERE status = 'sent';
CREATE INDEX enrollments_campaign ON app.enrollments (org_id, campaign_id, enrolled_at);
CREATE INDEX orders_customer ON app.orders (org_id, customer_id, ordered_at);
CREATE INDEX orders_email ON app.orders (org_id, email, ordered_at);
CREATE INDEX carts_customer ON app.carts (org_id, customer_id, abandoned_at);
"""


def upgrade() -> None:
    op.execute(SCHEMA)
    op.execute("ALTER TABLE app.consents ENABLE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY tenant_isolation ON app.consents "
        "USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid) "
        "WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)"
    )
    op.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON app.consents TO cartrecovery_app")


def downgrade() -> None:
    op.execute(
        """
        DROP INDEX IF EXISTS app.carts_customer;
        DROP INDEX IF EXISTS app.orders_email;
        DROP INDEX IF EXISTS app.orders_customer;
        DROP INDEX IF EXISTS app.enrollments_campaign;
        DROP INDEX IF EXISTS app.outbox_recipient_sent;
        ALTER TABLE app.outbox DROP COLUMN decided_at, DROP COLUMN deferrals,
          DROP COLUMN variant;
        ALTER TABLE app.campaigns DROP COLUMN reentry_cooldown_seconds;
        DROP TABLE app.consents;
        DROP FUNCTION app.consents_append_only();
        """
    )
