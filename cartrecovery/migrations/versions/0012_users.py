"""Users and their roles per organization (dashboard sign-in, API tokens).

- ``app.users``: one row per person, across orgs: a normalised (lower-case) email and an
  argon2 password hash. Not a tenant table (a user may belong to several orgs), but under
  row-level security all the same: the app role sees a user's row only as that user
  (``app.user_id``) or as an org the user belongs to (through ``app.memberships``).
- ``app.memberships``: (org, user, role), role one of viewer, marketer, admin. Tenant table
  (``org_id`` first in its key, the usual tenant policy) plus a read policy that lets a user
  see their own memberships across orgs; ``app.orgs`` likewise lets a user read the orgs they
  belong to. So the dashboard lists a user's orgs without the system role.
- ``app.user_credentials(email)``: the one way to reach a password hash before anybody is
  signed in (no org and no user known yet): a SECURITY DEFINER function that answers for one
  email at a time and that only the app role may call.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

USER_ID = "NULLIF(current_setting('app.user_id', true), '')::uuid"
ORG_ID = "NULLIF(current_setting('app.org_id', true), '')::uuid"

SCHEMA = f"""
CREATE TABLE app.users (
  user_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email text NOT NULL UNIQUE CHECK (email = lower(email) AND email LIKE '%_@_%'),
  password_hash text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE app.memberships (
  org_id uuid NOT NULL REFERENCES app.orgs ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES app.users ON DELETE CASCADE,
  role text NOT NULL CHECK (role IN ('viewer', 'marketer', 'admin')),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_user ON app.memberships (user_id);

ALTER TABLE app.memberships ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON app.memberships
  USING (org_id = {ORG_ID}) WITH CHECK (org_id = {ORG_ID});
CREATE POLICY own_memberships ON app.memberships FOR SELECT
  USING (user_id = {USER_ID});
GRANT SELECT, INSERT, UPDATE, DELETE ON app.memberships TO cartrecovery_app;

ALTER TABLE app.users ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_row ON app.users
  USING (user_id = {USER_ID}) WITH CHECK (user_id = {USER_ID});
-- Inside a tenant transaction the memberships subquery sees only that org's members.
CREATE POLICY org_members ON app.users FOR SELECT
  USING (EXISTS (SELECT 1 FROM app.memberships m WHERE m.user_id = users.user_id));
GRANT SELECT, UPDATE (password_hash, updated_at) ON app.users TO cartrecovery_app;

CREATE POLICY member_orgs ON app.orgs FOR SELECT
  USING (EXISTS (SELECT 1 FROM app.memberships m
                 WHERE m.org_id = orgs.org_id AND m.user_id = {USER_ID}));

CREATE FUNCTION app.user_credentials(p_email text)
RETURNS TABLE (user_id uuid, password_hash text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT u.user_id, u.password_hash FROM app.users u WHERE u.email = lower(p_email)
$$;
REVOKE ALL ON FUNCTION app.user_credentials(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.user_credentials(text) TO cartrecovery_app;
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute(
        """
        DROP FUNCTION app.user_credentials(text);
        DROP POLICY member_orgs ON app.orgs;
        DROP POLICY org_members ON app.users;
        DROP TABLE app.memberships;
        DROP TABLE app.users;
        """
    )
