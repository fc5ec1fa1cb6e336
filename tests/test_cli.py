"""The `cartrecovery` CLI one-off commands and the process supervisor behind `up`."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import uuid

import psutil
import psycopg
import pytest
from click.testing import CliRunner
from conftest import REPO, wait_for

from cartrecovery import tenancy
from cartrecovery.crypto import load_key
from cartrecovery.embedded import database_url_for
from cli.main import main
from cli.supervisor import Supervisor

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.fixture()
def cli_env(database_url):
    """The environment of a CLI run against the test database (no embedded servers)."""
    return {
        "DATABASE_URL": database_url,
        "APP_URL": "https://cr.example.test",
        "SECRET_KEY": "cli-test-secret",
        "ENCRYPTION_KEY": None,
    }


def invoke(args, env):
    result = CliRunner().invoke(main, args, env=env, catch_exceptions=False)
    return result


def test_orgs_create_prints_json_and_creates_the_org(cli_env, db):
    result = invoke(["orgs", "create", "Acme Outdoor", "--json"], cli_env)
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert set(body) == {"org_id", "api_key"}
    with db.system() as conn:
        row = conn.execute(
            "SELECT name FROM app.orgs WHERE org_id = %s", (body["org_id"],)
        ).fetchone()
    assert row["name"] == "Acme Outdoor"
    key = tenancy.verify_api_key(db, body["api_key"])
    assert key is not None and str(key.org_id) == body["org_id"] and key.role == "admin"
    with db.system() as conn:
        audit = conn.execute(
            "SELECT actor, action, target FROM app.audit_log WHERE org_id = %s", (body["org_id"],)
        ).fetchall()
    assert [(a["action"], a["target"]) for a in audit] == [("orgs.create", body["org_id"])]
    assert audit[0]["actor"].startswith("cli:")


def test_orgs_create_refuses_an_empty_name(cli_env, db):
    with db.system() as conn:
        before = conn.execute("SELECT count(*) AS n FROM app.orgs").fetchone()["n"]
    result = CliRunner().invoke(main, ["orgs", "create", "  ", "--json"], env=cli_env)
    assert result.exit_code == 2
    assert "must not be empty" in result.output
    with db.system() as conn:
        assert conn.execute("SELECT count(*) AS n FROM app.orgs").fetchone()["n"] == before


def test_connections_add_prints_webhook_urls_and_stores_the_secret(cli_env, db, org):
    shop = f"cli-{uuid.uuid4().hex[:8]}.myshopify.com"
    result = invoke(
        [
            "connections",
            "add",
            "shopify",
            "--org",
            str(org.org_id),
            "--shop-domain",
            shop,
            "--secret",
            "shpss_cli_secret",
            "--json",
        ],
        cli_env,
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert set(body) == {"connection_id", "webhook_urls"}
    urls = body["webhook_urls"]
    assert (
        urls["checkouts/create"] == "https://cr.example.test/api/webhooks/shopify/checkout-create"
    )
    assert urls["orders/create"] == "https://cr.example.test/api/webhooks/shopify/order-create"
    assert urls["customers/redact"].endswith("/api/webhooks/shopify/customers-redact")

    connection = tenancy.find_connection(db, load_key(None, "cli-test-secret"), "shopify", shop)
    assert connection is not None
    assert str(connection.connection_id) == body["connection_id"]
    assert connection.org_id == org.org_id
    assert connection.secret == "shpss_cli_secret"


def test_connections_add_custom_platform_url_names_the_connection(cli_env, org):
    result = invoke(
        [
            "connections",
            "add",
            "custom",
            "--org",
            str(org.org_id),
            "--shop-domain",
            f"{uuid.uuid4().hex[:8]}.example",
            "--json",
        ],
        cli_env,
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["webhook_urls"] == {
        "events": f"https://cr.example.test/api/webhooks/custom/{body['connection_id']}"
    }
    assert len(body["secret"]) >= 20  # generated, shown once


def test_connections_add_rejects_unknown_org_and_taken_store(cli_env, db, make_org):
    shop = f"cli-{uuid.uuid4().hex[:8]}.myshopify.com"
    result = CliRunner().invoke(
        main,
        [
            "connections",
            "add",
            "shopify",
            "--org",
            str(uuid.uuid4()),
            "--shop-domain",
            shop,
            "--secret",
            "s",
            "--json",
        ],
        env=cli_env,
    )
    assert result.exit_code == 2 and "no org" in result.output

    first, second = make_org("first"), make_org("second")
    args = ["connections", "add", "shopify", "--shop-domain", shop, "--secret", "s", "--json"]
    assert invoke(args + ["--org", str(first.org_id)], cli_env).exit_code == 0
    taken = CliRunner().invoke(main, args + ["--org", str(second.org_id)], env=cli_env)
    assert taken.exit_code == 1 and "connected to another org" in taken.output
    with db.system() as conn:
        rows = conn.execute(
            "SELECT org_id FROM app.connections WHERE shop_domain = %s", (shop,)
        ).fetchall()
    assert [r["org_id"] for r in rows] == [first.org_id]


def test_migrate_is_idempotent_on_a_fresh_database(server_url):
    name = f"cr_cli_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = database_url_for(server_url, name)
    try:
        for _ in range(2):
            result = invoke(["migrate"], {"DATABASE_URL": url})
            assert result.exit_code == 0, result.output
        with psycopg.connect(url) as conn:
            versions = conn.execute("SELECT version_num FROM alembic_version").fetchall()
            assert len(versions) == 1
            assert conn.execute("SELECT to_regclass('app.carts')").fetchone()[0] == "app.carts"
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_migrate_without_database_url_uses_the_embedded_postgres_and_stops_it(tmp_path):
    home = tmp_path / "home"
    env = {"DATABASE_URL": None, "REDIS_URL": None, "CARTRECOVERY_HOME": str(home)}
    result = invoke(["migrate"], env)
    assert result.exit_code == 0, result.output
    assert (home / "pgdata" / "PG_VERSION").exists()
    # the server this command started is gone with it
    assert not (home / "pgdata" / "postmaster.pid").exists()


# --- the supervisor -------------------------------------------------------------------------


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_supervisor_stops_every_child():
    out = io.StringIO()
    supervisor = Supervisor(out=out, grace=10)
    a = supervisor.start("alpha", SLEEPER)
    b = supervisor.start("beta", SLEEPER)
    assert a.returncode is None and b.returncode is None
    codes = supervisor.stop()
    assert codes == {"alpha": -signal.SIGTERM, "beta": -signal.SIGTERM}
    assert _gone(a.pid) and _gone(b.pid)


def test_supervisor_reports_a_child_that_exits_early():
    supervisor = Supervisor(out=io.StringIO())
    supervisor.start("steady", SLEEPER)
    supervisor.start("quitter", [sys.executable, "-c", "import sys; sys.exit(3)"])
    try:
        exited = supervisor.watch(timeout=30)
        assert exited is not None
        assert (exited.name, exited.returncode) == ("quitter", 3)
        assert supervisor.children["steady"].returncode is None
    finally:
        supervisor.stop()
    assert supervisor.children["steady"].returncode == -signal.SIGTERM


def test_supervisor_prefixes_output_with_the_child_name():
    out = io.StringIO()
    supervisor = Supervisor(out=out)
    supervisor.start("greeter", [sys.executable, "-c", "print('hello'); print('world')"])
    wait_for(lambda: supervisor.exited())
    supervisor.stop()
    lines = out.getvalue().splitlines()
    assert any(line.startswith("greeter") and line.endswith("| hello") for line in lines)
    assert list(supervisor.children["greeter"].lines) == ["hello", "world"]


def test_supervisor_kills_what_ignores_sigterm_and_grandchildren():
    stubborn = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    supervisor = Supervisor(out=io.StringIO())
    parent = supervisor.start("stubborn", [sys.executable, "-c", stubborn])
    grandchild = int(wait_for(lambda: parent.lines and parent.lines[0]))
    codes = supervisor.stop(grace=0.5)
    assert codes["stubborn"] == -signal.SIGKILL
    wait_for(lambda: _gone(grandchild), message="grandchild still running")


def test_sigterm_to_the_supervising_process_stops_its_children(tmp_path):
    script = (
        "import sys\n"
        "from cli.supervisor import Supervisor\n"
        "s = Supervisor()\n"
        "s.handle_signals()\n"
        f"sleeper = {SLEEPER!r}\n"
        "for name in ('one', 'two'):\n"
        "    print('pid', s.start(name, sleeper).pid, flush=True)\n"
        "s.watch()\n"
        "print('codes', s.stop(), flush=True)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    pids = []
    try:
        for line in proc.stdout:
            if line.startswith("pid "):
                pids.append(int(line.split()[1]))
            if len(pids) == 2:
                break
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=30)[0]
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert "codes" in rest
    for pid in pids:
        wait_for(lambda pid=pid: _gone(pid), message=f"child {pid} still running")


def _org_with_key(cli_env) -> dict:
    result = invoke(["orgs", "create", f"Keys {uuid.uuid4().hex[:6]}", "--json"], cli_env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_api_keys_create_list_rotate_revoke(cli_env, db):
    made = _org_with_key(cli_env)
    org = made["org_id"]
    created = invoke(
        ["api-keys", "create", "--org", org, "--role", "read", "--name", "ci"]
        + ["--expires-in", "90d", "--json"],
        cli_env,
    )
    assert created.exit_code == 0, created.output
    key = json.loads(created.stdout)
    assert key["role"] == "read" and key["name"] == "ci" and key["expires_at"]
    verified = tenancy.verify_api_key(db, key["api_key"])
    assert verified is not None and verified.role == "read" and str(verified.org_id) == org

    listed = json.loads(invoke(["api-keys", "list", "--org", org, "--json"], cli_env).stdout)
    ids = [k["key_id"] for k in listed["api_keys"]]
    assert key["key_id"] in ids and len(ids) == 2  # the org's first key and this one
    assert all("api_key" not in k for k in listed["api_keys"])  # never shown again

    # Rotation with no grace: the old key stops at once, the new one has its role and name.
    rotated = invoke(
        ["api-keys", "rotate", key["key_id"], "--org", org, "--grace", "0", "--json"], cli_env
    )
    assert rotated.exit_code == 0, rotated.output
    new = json.loads(rotated.stdout)
    assert new["replaces"] == key["key_id"] and new["role"] == "read" and new["name"] == "ci"
    assert tenancy.verify_api_key(db, key["api_key"]) is None
    assert tenancy.verify_api_key(db, new["api_key"]) is not None

    revoked = invoke(["api-keys", "revoke", new["key_id"], "--org", org, "--json"], cli_env)
    assert revoked.exit_code == 0, revoked.output
    assert json.loads(revoked.stdout) == {"key_id": new["key_id"], "status": "revoked"}
    assert tenancy.verify_api_key(db, new["api_key"]) is None
    again = invoke(["api-keys", "revoke", new["key_id"], "--org", org], cli_env)
    assert again.exit_code == 1 and "no live API key" in again.output

    with db.system() as conn:
        actions = [
            r["action"]
            for r in conn.execute(
                "SELECT action FROM app.audit_log WHERE org_id = %s ORDER BY created_at", (org,)
            ).fetchall()
        ]
    assert actions.count("api-keys.create") == 1 and "api-keys.rotate" in actions
    assert "api-keys.revoke" in actions


def test_api_keys_rotate_keeps_the_old_key_for_the_grace(cli_env, db):
    made = _org_with_key(cli_env)
    org, old = made["org_id"], tenancy.verify_api_key(db, made["api_key"])
    rotated = invoke(
        ["api-keys", "rotate", str(old.key_id), "--org", org, "--grace", "2h", "--json"], cli_env
    )
    assert rotated.exit_code == 0, rotated.output
    assert tenancy.verify_api_key(db, made["api_key"]) is not None  # still working, for 2 h
    with db.system() as conn:
        row = conn.execute(
            "SELECT expires_at - now() AS left FROM app.api_keys WHERE key_id = %s",
            (old.key_id,),
        ).fetchone()
    assert 7000 < row["left"].total_seconds() <= 7200


@pytest.mark.parametrize(
    "args, hint",
    [
        (["create", "--role", "read", "--expires-in", "10s"], "--expires-in"),  # under 60 s
        (["create", "--role", "read", "--expires-in", "soon"], "--expires-in"),
        (["create", "--role", "publishable"], "--role"),
        (["rotate", "not-a-uuid"], "KEY_ID"),
        (["rotate", str(uuid.uuid4()), "--grace", "31d"], "--grace"),  # over 30 days
    ],
)
def test_api_keys_refuse_what_the_api_refuses(cli_env, args, hint):
    org = _org_with_key(cli_env)["org_id"]
    result = CliRunner().invoke(main, ["api-keys", *args, "--org", org], env=cli_env)
    assert result.exit_code == 2, result.output
    assert hint in result.output


def test_api_keys_unknown_key_is_an_error(cli_env):
    org = _org_with_key(cli_env)["org_id"]
    result = invoke(["api-keys", "rotate", str(uuid.uuid4()), "--org", org], cli_env)
    assert result.exit_code == 1 and "no live API key" in result.output
