"""SMS and push channel state.

- ``app.outbox.segments``: the SMS segment count of the body that was sent (carriers bill per
  segment); ``delivery_status`` / ``delivery_status_at`` / ``delivery_error_code``: the latest
  provider delivery status (Twilio ``queued … sent … delivered|undelivered|failed``), which a
  late or out-of-order callback never moves backwards. ``status`` stays the send lifecycle.
- Indexes for callbacks that arrive before their org is known: status callbacks find their
  message by the provider's id, inbound SMS find the orgs that texted a phone and the org
  that owns a sending number or messaging service (org settings
  ``sender_identities.sms.from_number`` / ``.messaging_service_sid``).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SCHEMA = """
ALTER TABLE app.outbox
  ADD COLUMN segments smallint CHECK (segments > 0),
  ADD COLUMN delivery_status text,
  ADD COLUMN delivery_status_at timestamptz,
  ADD COLUMN delivery_error_code text;

CREATE INDEX outbox_provider_message ON app.outbox (provider_message_id)
  WHERE provider_message_id IS NOT NULL;
CREATE INDEX outbox_sms_recipient ON app.outbox (recipient) WHERE channel = 'sms';
CREATE INDEX suppressions_sms_address ON app.suppressions (address) WHERE channel = 'sms';
CREATE INDEX consents_sms_address ON app.consents (address) WHERE channel = 'sms';
CREATE INDEX customers_phone ON app.customers (phone) WHERE phone IS NOT NULL;
CREATE INDEX orgs_sms_from_number
  ON app.orgs ((settings -> 'sender_identities' -> 'sms' ->> 'from_number'));
CREATE INDEX orgs_sms_messaging_service
  ON app.orgs ((settings -> 'sender_identities' -> 'sms' ->> 'messaging_service_sid'));
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute(
        """
        DROP INDEX IF EXISTS app.orgs_sms_messaging_service;
        DROP INDEX IF EXISTS app.orgs_sms_from_number;
        DROP INDEX IF EXISTS app.customers_phone;
        DROP INDEX IF EXISTS app.consents_sms_address;
        DROP INDEX IF EXISTS app.suppressions_sms_address;
        DROP INDEX IF EXISTS app.outbox_sms_recipient;
        DROP INDEX IF EXISTS app.outbox_provider_message;
        ALTER TABLE app.outbox DROP COLUMN delivery_error_code,
          DROP COLUMN delivery_status_at, DROP COLUMN delivery_status, DROP COLUMN segments;
        """
    )
