"""Model scoring recorded on each outbox row (docs/models.md, "What each message records").

- ``send_time_decision``: how ``due_at`` was chosen: ``model`` (the champion's best allowed
  instant), ``explore`` (a random allowed instant), ``control`` (the step's control share keeps
  the fixed delay), ``fallback:<why>`` (no model, scoring failed...), NULL when the step does not
  use smart send time. ``send_time_model``/``send_time_model_version`` name the model,
  ``send_time_propensity`` is the probability the policy had of choosing this instant (for
  off-policy evaluation), ``send_time_explored`` whether it explored.
- ``discount_decision``: ``model`` (the content model decided), ``control``, ``fallback:<why>``,
  NULL without smart discount; ``discount_offered`` whether the message carries the code (NULL:
  the step's own rule, a code when it has a discount); ``content_model``/``_version``.
- ``model_scoring``: the numbers behind the decisions (fixed and greedy instants, predicted
  recovery at each, the uplift, the discount rate, the device).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE app.outbox
          ADD COLUMN send_time_decision text,
          ADD COLUMN send_time_model text,
          ADD COLUMN send_time_model_version text,
          ADD COLUMN send_time_propensity double precision
            CHECK (send_time_propensity IS NULL OR (send_time_propensity > 0
                                                    AND send_time_propensity <= 1)),
          ADD COLUMN send_time_explored boolean,
          ADD COLUMN discount_decision text,
          ADD COLUMN discount_offered boolean,
          ADD COLUMN content_model text,
          ADD COLUMN content_model_version text,
          ADD COLUMN model_scoring jsonb
        """
    )


def downgrade() -> None:
    op.execute(
        """
        ALTER TABLE app.outbox
          DROP COLUMN model_scoring,
          DROP COLUMN content_model_version,
          DROP COLUMN content_model,
          DROP COLUMN discount_offered,
          DROP COLUMN discount_decision,
          DROP COLUMN send_time_explored,
          DROP COLUMN send_time_propensity,
          DROP COLUMN send_time_model_version,
          DROP COLUMN send_time_model,
          DROP COLUMN send_time_decision
        """
    )
