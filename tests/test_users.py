"""Accounts: users with a role per org, `cartrecovery users create`, access tokens from
``POST /api/v1/auth/token`` and the API accepting them beside API keys with the same roles."""

from __future__ import annotations

import json
import time
import uuid

import jwt
import pytest
from click.testing import CliRunner

from cartrecovery import access, tokens, users
from cartrecovery.rate_limits import RateLimit
from cli.main import main

CAMPAIGN = {
    "name": "Reminder",
    "sequence_steps": [
        {"channel": "email", "delay_seconds": 3600, "subject": "Hi", "template": "cart_reminder"}
    ],
}


def email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@Example.com"


@pytest.fixture()
def cli_env(database_url, settings):
    return {"DATABASE_URL": database_url, "SECRET_KEY": settings.secret_key}


def token_for(client, address: str, password: str, **extra):
    return client.post("/api/v1/auth/token", json={"email": address, "password": password, **extra})


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


# --- core ------------------------------------------------------------------------------------


def test_passwords_are_hashed_with_argon2_and_verified(db, org):
    address = email()
    made = users.create_user(db, address, org.org_id, "marketer", "correct horse battery")
    assert made.created and made.password == "correct horse battery"
    with db.system() as conn:
        row = conn.execute(
            "SELECT email, password_hash FROM app.users WHERE user_id = %s", (made.user_id,)
        ).fetchone()
    assert row["email"] == address.lower()
    assert row["password_hash"].startswith("$argon2id$")
    assert "correct horse" not in row["password_hash"]

    user = users.authenticate(db, address.upper(), "correct horse battery")
    assert user is not None and user.user_id == made.user_id
    assert [(m.org_id, m.role) for m in user.memberships] == [(org.org_id, "marketer")]
    assert users.authenticate(db, address, "correct horse batterY") is None
    assert users.authenticate(db, "nobody-" + address, "correct horse battery") is None


def test_a_user_may_belong_to_several_orgs_and_creating_is_audited(db, make_org):
    first, second = make_org("multi-a"), make_org("multi-b")
    address = email()
    made = users.create_user(db, address, first.org_id, "viewer", actor="cli:test")
    assert made.password and len(made.password) >= users.MIN_PASSWORD_LENGTH
    again = users.create_user(db, address, second.org_id, "admin", actor="cli:test")
    assert again.user_id == made.user_id and not again.created and again.password is None

    user = users.authenticate(db, address, made.password)  # the password did not change
    assert {(m.org_id, m.role) for m in user.memberships} == {
        (first.org_id, "viewer"),
        (second.org_id, "admin"),
    }
    with db.tenant(second.org_id) as conn:
        rows = conn.execute(
            "SELECT actor, action, target, details FROM app.audit_log "
            "WHERE org_id = %s AND action = 'users.create'",
            (second.org_id,),
        ).fetchall()
    assert [(r["actor"], r["target"]) for r in rows] == [("cli:test", str(made.user_id))]
    assert rows[0]["details"] == {"role": "admin", "new_user": False, "password_set": False}
    assert address.lower() not in json.dumps([dict(r) for r in rows], default=str)


@pytest.mark.parametrize(
    "address, role, password",
    [
        ("not-an-email", "viewer", None),
        ("a@b.example", "owner", None),
        ("a@b.example", "viewer", "short"),
    ],
)
def test_invalid_users_are_refused_and_nothing_is_stored(db, org, address, role, password):
    with db.system() as conn:
        before = conn.execute("SELECT count(*) AS n FROM app.users").fetchone()["n"]
    with pytest.raises(ValueError):
        users.create_user(db, address, org.org_id, role, password)
    with db.system() as conn:
        assert conn.execute("SELECT count(*) AS n FROM app.users").fetchone()["n"] == before


def test_sign_in_counts_failures_per_email_and_client(db, org, runtime):
    address = email("limit")
    users.create_user(db, address, org.org_id, "viewer", "the right password")
    rate = RateLimit(limit=2, window_seconds=3600)
    for _ in range(2):
        assert users.sign_in(db, runtime.redis, address, "wrong", "198.51.100.1", rate) is None
    with pytest.raises(users.TooManyAttempts) as refused:
        users.sign_in(db, runtime.redis, address, "the right password", "198.51.100.1", rate)
    assert 1 <= refused.value.retry_after <= 3600
    # Successes are not counted, and another client or email has its own count.
    other = users.sign_in(db, runtime.redis, address, "the right password", "198.51.100.2", rate)
    assert other is not None
    assert users.sign_in(db, runtime.redis, address, "the right password", "198.51.100.2", rate)
    assert users.sign_in(db, None, address, "the right password", "198.51.100.1", rate)


def test_a_user_scope_sees_only_its_own_memberships_and_orgs(db, make_org):
    mine, other = make_org("scope-mine"), make_org("scope-other")
    me = users.create_user(db, email(), mine.org_id, "viewer").user_id
    users.create_user(db, email(), other.org_id, "admin")
    with db.user(me) as conn:
        orgs = conn.execute("SELECT org_id FROM app.orgs").fetchall()
        members = conn.execute("SELECT org_id, user_id FROM app.memberships").fetchall()
        people = conn.execute("SELECT user_id FROM app.users").fetchall()
        carts = conn.execute("SELECT count(*) AS n FROM app.carts").fetchone()["n"]
    assert [r["org_id"] for r in orgs] == [mine.org_id]
    assert [(r["org_id"], r["user_id"]) for r in members] == [(mine.org_id, me)]
    assert [r["user_id"] for r in people] == [me]
    assert carts == 0
    # Before sign-in nothing is visible at all, except through app.user_credentials.
    with db.user(None) as conn:
        assert conn.execute("SELECT count(*) AS n FROM app.users").fetchone()["n"] == 0
        assert conn.execute("SELECT count(*) AS n FROM app.orgs").fetchone()["n"] == 0


def test_demo_user_is_created_once_and_keeps_its_credentials(db, make_org):
    demo = make_org("demo-user")
    address = email("demo")
    first = users.ensure_demo_user(db, demo.org_id, "demo-secret", email=address)
    second = users.ensure_demo_user(db, demo.org_id, "demo-secret", email=address)
    assert first == second and first[0] == address.lower()
    user = users.authenticate(db, *first)
    assert [(m.org_id, m.role) for m in user.memberships] == [(demo.org_id, "admin")]
    with db.tenant(demo.org_id) as conn:
        n = conn.execute(
            "SELECT count(*) AS n FROM app.audit_log WHERE action = 'users.create'"
        ).fetchone()["n"]
    assert n == 1  # the second call changed nothing


def test_user_roles_grant_what_their_key_roles_grant():
    pairs = {"viewer": "read", "marketer": "write", "admin": "admin"}
    for user_role, key_role in pairs.items():
        for level in access.LEVELS:
            assert access.allows(user_role, level, user=True) == access.allows(key_role, level)
    assert not access.allows("viewer", "write", user=True)
    assert access.allows("marketer", "write", user=True)


def test_tokens_carry_the_claims_and_refuse_tampering():
    user_id, org_id = uuid.uuid4(), uuid.uuid4()
    token = tokens.issue("s3cret", user_id, org_id, "viewer", now=1_000_000_000)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == str(user_id) and claims["org"] == str(org_id)
    assert claims["role"] == "viewer" and claims["exp"] - claims["iat"] == 15 * 60
    assert claims["jti"]
    with pytest.raises(tokens.InvalidToken):  # long expired
        tokens.decode("s3cret", token)
    fresh = tokens.issue("s3cret", user_id, org_id, "viewer")
    assert tokens.decode("s3cret", fresh).user_id == user_id
    with pytest.raises(tokens.InvalidToken):
        tokens.decode("another secret", fresh)
    unsigned = jwt.encode(claims | {"exp": int(time.time()) + 60}, None, algorithm="none")
    with pytest.raises(tokens.InvalidToken):
        tokens.decode("s3cret", unsigned)


# --- CLI -------------------------------------------------------------------------------------


def test_cli_users_create_generates_a_password_that_gets_a_token(cli_env, db, org, client):
    address = email("cli")
    result = CliRunner().invoke(
        main,
        ["users", "create", address, "--org", str(org.org_id), "--role", "marketer", "--json"],
        env=cli_env,
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert set(body) == {"user_id", "password"}
    with db.tenant(org.org_id) as conn:
        audit = conn.execute(
            "SELECT actor, target FROM app.audit_log WHERE action = 'users.create'"
        ).fetchall()
    assert [a["target"] for a in audit] == [body["user_id"]]
    assert audit[0]["actor"].startswith("cli:")

    response = token_for(client, address, body["password"])
    assert response.status_code == 200, response.get_json()
    issued = response.get_json()
    assert issued["token_type"] == "bearer" and issued["expires_in"] == 900
    claims = tokens.decode(cli_env["SECRET_KEY"], issued["access_token"])
    assert str(claims.user_id) == body["user_id"] and claims.org_id == org.org_id
    assert claims.role == "marketer"


def test_cli_users_create_reads_the_password_from_stdin(cli_env, db, make_org, client):
    shop = make_org("cli-stdin")
    name = f"CLI stdin {uuid.uuid4().hex[:6]}"
    with db.system() as conn:
        conn.execute("UPDATE app.orgs SET name = %s WHERE org_id = %s", (name, shop.org_id))
    address = email("stdin")
    result = CliRunner().invoke(
        main,
        ["users", "create", address, "--org", name, "--role", "viewer", "--password-stdin"],
        input="a long enough password\n",
        env=cli_env,
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "a long enough password" not in result.output
    assert "created" in result.output
    response = token_for(client, address, "a long enough password")
    assert response.status_code == 200
    claims = tokens.decode(cli_env["SECRET_KEY"], response.get_json()["access_token"])
    assert claims.org_id == shop.org_id and claims.role == "viewer"


def test_cli_users_create_refuses_a_short_password_and_an_unknown_org(cli_env, db, org):
    address = email("refused")
    short = CliRunner().invoke(
        main,
        ["users", "create", address, "--org", str(org.org_id), "--role", "viewer"]
        + ["--password-stdin"],
        input="short\n",
        env=cli_env,
    )
    assert short.exit_code == 2 and "at least" in short.output
    unknown = CliRunner().invoke(
        main,
        ["users", "create", address, "--org", "no such org", "--role", "viewer"],
        env=cli_env,
    )
    assert unknown.exit_code == 2 and "no org" in unknown.output
    with db.system() as conn:
        found = conn.execute(
            "SELECT 1 FROM app.users WHERE email = %s", (address.lower(),)
        ).fetchone()
    assert found is None


# --- the token endpoint ----------------------------------------------------------------------


def test_wrong_credentials_get_the_same_401(client, db, org):
    address = email()
    users.create_user(db, address, org.org_id, "viewer", "the right password")
    wrong_password = token_for(client, address, "the wrong password")
    unknown_email = token_for(client, "x" + address, "the right password")
    for response in (wrong_password, unknown_email):
        assert response.status_code == 401
        assert response.get_json() == {
            "error": {
                "code": "invalid_credentials",
                "message": "wrong email or password",
                "details": {},
            }
        }


def test_bad_token_requests_are_400(client):
    assert client.post("/api/v1/auth/token", json={"email": "a@b.c"}).status_code == 400
    assert client.post("/api/v1/auth/token", data="nope").status_code == 400
    extra = client.post(
        "/api/v1/auth/token", json={"email": "a@b.c", "password": "x", "admin": True}
    )
    assert extra.status_code == 400
    assert extra.get_json()["error"]["code"] == "validation_error"


def test_failed_sign_ins_are_rate_limited_per_email_and_ip(app, client, db, org):
    app.config.update(SIGN_IN_RATE_LIMIT=3, SIGN_IN_RATE_WINDOW=3600)
    address = email("limited")
    users.create_user(db, address, org.org_id, "viewer", "the right password")
    for _ in range(3):
        assert token_for(client, address, "a wrong password").status_code == 401
    locked = token_for(client, address, "the right password")
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) >= 1
    assert locked.get_json()["error"]["code"] == "rate_limited"
    # Another client address is counted apart.
    other = client.post(
        "/api/v1/auth/token",
        json={"email": address, "password": "the right password"},
        environ_base={"REMOTE_ADDR": "203.0.113.9"},
    )
    assert other.status_code == 200


def test_a_user_of_several_orgs_names_one(client, db, make_org):
    first, second = make_org("pick-a"), make_org("pick-b")
    address = email("pick")
    users.create_user(db, address, first.org_id, "viewer", "the right password")
    users.create_user(db, address, second.org_id, "admin")
    unnamed = token_for(client, address, "the right password")
    assert unnamed.status_code == 400
    assert unnamed.get_json()["error"]["code"] == "org_required"
    assert {o["org_id"] for o in unnamed.get_json()["error"]["details"]["orgs"]} == {
        str(first.org_id),
        str(second.org_id),
    }
    named = token_for(client, address, "the right password", org=str(second.org_id).upper())
    claims = tokens.decode("test-secret-key", named.get_json()["access_token"])
    assert claims.org_id == second.org_id and claims.role == "admin"
    stranger = make_org("pick-stranger")
    refused = token_for(client, address, "the right password", org=str(stranger.org_id))
    assert refused.status_code == 403


# --- the API with a user's token -------------------------------------------------------------


def _user_token(client, db, org_id, role: str) -> str:
    address = email(role)
    users.create_user(db, address, org_id, role, "the right password")
    response = token_for(client, address, "the right password")
    assert response.status_code == 200
    return response.get_json()["access_token"]


def test_a_viewer_token_reads_but_cannot_write(client, db, org):
    token = _user_token(client, db, org.org_id, "viewer")
    read = client.get("/api/v1/campaigns", headers=bearer(token))
    assert read.status_code == 200 and read.get_json() == {"campaigns": []}
    write = client.post("/api/v1/campaigns", json=CAMPAIGN, headers=bearer(token))
    assert write.status_code == 403
    assert write.get_json()["error"]["code"] == "forbidden"
    admin_only = client.patch("/api/v1/settings", json={}, headers=bearer(token))
    assert admin_only.status_code == 403
    assert client.get("/api/v1/campaigns", headers=org.headers).get_json() == {"campaigns": []}


def test_a_marketer_token_writes_and_the_audit_log_names_the_user(client, db, org):
    token = _user_token(client, db, org.org_id, "marketer")
    created = client.post("/api/v1/campaigns", json=CAMPAIGN, headers=bearer(token))
    assert created.status_code == 201, created.get_json()
    user_id = tokens.decode("test-secret-key", token).user_id
    with db.tenant(org.org_id) as conn:
        actors = [
            r["actor"]
            for r in conn.execute(
                "SELECT actor FROM app.audit_log WHERE action = 'POST /api/v1/campaigns'"
            ).fetchall()
        ]
    assert actors == [f"user:{user_id}"]
    # Settings are admin-only, as for a write key.
    settings = client.patch("/api/v1/settings", json={}, headers=bearer(token))
    assert settings.status_code == 403


def test_a_token_sees_only_its_own_org(client, db, make_org):
    mine, other = make_org("tok-mine"), make_org("tok-other")
    client.post("/api/v1/campaigns", json=CAMPAIGN, headers=other.headers)
    token = _user_token(client, db, mine.org_id, "admin")
    assert client.get("/api/v1/campaigns", headers=bearer(token)).get_json() == {"campaigns": []}


def test_expired_forged_and_revoked_tokens_are_401(client, db, org, settings):
    address = email("expired")
    user_id = users.create_user(db, address, org.org_id, "admin", "the right password").user_id
    expired = tokens.issue(settings.secret_key, user_id, org.org_id, "admin", 60, time.time() - 61)
    forged = tokens.issue("not the secret", user_id, org.org_id, "admin")
    other_org = tokens.issue(settings.secret_key, user_id, uuid.uuid4(), "admin")
    for token in (expired, forged, other_org, "a.b.c"):
        response = client.get("/api/v1/campaigns", headers=bearer(token))
        assert response.status_code == 401, token
        assert response.get_json()["error"]["code"] == "unauthorized"
    good = tokens.issue(settings.secret_key, user_id, org.org_id, "admin")
    assert client.get("/api/v1/campaigns", headers=bearer(good)).status_code == 200
    with db.tenant(org.org_id) as conn:
        conn.execute("DELETE FROM app.memberships WHERE user_id = %s", (user_id,))
    assert client.get("/api/v1/campaigns", headers=bearer(good)).status_code == 401


def test_user_tokens_are_refused_on_tracking_endpoints(client, db, org):
    token = _user_token(client, db, org.org_id, "admin")
    response = client.post(
        "/api/v1/carts/track",
        json={"cart_id": "c1", "email": "shopper@example.com"},
        headers=bearer(token),
    )
    assert response.status_code == 403
