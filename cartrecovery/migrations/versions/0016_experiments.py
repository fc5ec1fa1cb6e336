"""Experiments: held-out messages and the bandit allocation history.

- ``app.outbox.status`` may be ``held_out``: a cart of a campaign's holdout group is enrolled
  and tracked like the rest and gets one row per step with this status, so the warehouse and
  the results endpoint can count it; the scheduler only ever enqueues ``scheduled`` rows, so
  nothing is sent for it. Exposure is the row itself: ``variant`` for a row that was sent,
  ``held_out`` for one that never will be.
- ``app.bandit_allocations``: every traffic split a Thompson-sampling step used (``shares``
  per variant name), with the counts it came from (``successes`` and ``trials`` per variant)
  and each variant's probability of being best. Tenant table under the usual policy.
- An index on the outbox by (org, campaign, step) for the results and the bandit counts.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

ORG_ID = "NULLIF(current_setting('app.org_id', true), '')::uuid"

SCHEMA = """
ALTER TABLE app.outbox DROP CONSTRAINT outbox_status_check;
ALTER TABLE app.outbox ADD CONSTRAINT outbox_status_check
  CHECK (status IN ('scheduled', 'enqueued', 'sending', 'sent', 'held', 'cancelled',
                    'failed', 'held_out'));
CREATE INDEX outbox_campaign_step ON app.outbox (org_id, campaign_id, step_index);

CREATE TABLE app.bandit_allocations (
  org_id uuid NOT NULL REFERENCES app.orgs ON DELETE CASCADE,
  allocation_id uuid NOT NULL DEFAULT gen_random_uuid(),
  campaign_id uuid NOT NULL,
  step_index integer NOT NULL,
  -- The transaction time, as app.outbox.created_at: the rows written with a share match it.
  allocated_at timestamptz NOT NULL DEFAULT now(),
  min_share double precision NOT NULL,
  shares jsonb NOT NULL,
  probability_best jsonb NOT NULL,
  successes jsonb NOT NULL,
  trials jsonb NOT NULL,
  PRIMARY KEY (org_id, allocation_id),
  FOREIGN KEY (org_id, campaign_id) REFERENCES app.campaigns (org_id, campaign_id)
    ON DELETE CASCADE
);
CREATE INDEX bandit_allocations_latest
  ON app.bandit_allocations (org_id, campaign_id, step_index, allocated_at DESC);
"""


def upgrade() -> None:
    op.execute(SCHEMA)
    op.execute("ALTER TABLE app.bandit_allocations ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON app.bandit_allocations "
        f"USING (org_id = {ORG_ID}) WITH CHECK (org_id = {ORG_ID})"
    )
    op.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON app.bandit_allocations TO cartrecovery_app")


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE IF EXISTS app.bandit_allocations;
        DROP INDEX IF EXISTS app.outbox_campaign_step;
        UPDATE app.outbox SET status = 'cancelled', reason = 'holdout' WHERE status = 'held_out';
        ALTER TABLE app.outbox DROP CONSTRAINT outbox_status_check;
        ALTER TABLE app.outbox ADD CONSTRAINT outbox_status_check
          CHECK (status IN ('scheduled', 'enqueued', 'sending', 'sent', 'held', 'cancelled',
                            'failed'));
        """
    )
