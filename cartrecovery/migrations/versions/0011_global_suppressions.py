"""Suppressions that hold before any org knows the address.

A STOP texted to the shared sender from a number no org has stored, texted or recorded
consent for belongs to no org yet, but the confirmation we send ("You are unsubscribed") must
be true for whichever org meets that number later. It is kept as
``app.global_suppressions``: the address only as a salted hash (HMAC-SHA256 with the random
salt in ``app.global_salts``), so no org can read it, and the send-time gate checks it for
every org (``cartrecovery.suppressions``).

``app.global_event_keys`` keeps the provider's id of each such inbound message (and nothing
else), so a redelivered STOP cannot undo a later START.

These tables are not tenant data (no org_id, no row-level security; only hashes and provider
ids): the application role may read them and write suppressions and keys, never the salt.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

import secrets

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE app.global_salts (
          name text PRIMARY KEY,
          salt bytea NOT NULL,
          created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE app.global_suppressions (
          channel text NOT NULL,
          address_hash text NOT NULL,
          reason text NOT NULL,
          created_at timestamptz NOT NULL DEFAULT now(),
          PRIMARY KEY (channel, address_hash)
        );
        CREATE TABLE app.global_event_keys (
          source text NOT NULL,
          dedup_key text NOT NULL,
          received_at timestamptz NOT NULL DEFAULT now(),
          PRIMARY KEY (source, dedup_key)
        );
        GRANT SELECT ON app.global_salts TO cartrecovery_app;
        GRANT SELECT, INSERT ON app.global_event_keys TO cartrecovery_app;
        GRANT SELECT, INSERT, UPDATE, DELETE ON app.global_suppressions TO cartrecovery_app;
        """
    )
    # The salt is made here, once: rotating it would forget every global suppression.
    op.execute(
        "INSERT INTO app.global_salts (name, salt) "
        f"VALUES ('suppressions', '\\x{secrets.token_hex(32)}'::bytea)"
    )


def downgrade() -> None:
    op.execute("DROP TABLE app.global_event_keys, app.global_suppressions, app.global_salts")
