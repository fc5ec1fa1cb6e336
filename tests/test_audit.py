"""The audit log: API actions recorded with their actor, reads of personal data too, no PII
in the rows, and a database that refuses to change or delete them."""

from __future__ import annotations

import logging

import psycopg
import pytest

from cartrecovery import audit, tenancy
from cartrecovery.db import APP_ROLE


def entries(db, org_id):
    with db.system() as conn:
        return conn.execute(
            "SELECT * FROM app.audit_log WHERE org_id = %s ORDER BY created_at", (org_id,)
        ).fetchall()


def key_id(db, org):
    return tenancy.verify_api_key(db, org.api_key).key_id


def test_api_actions_are_recorded_with_their_actor(db, client, org, make_org):
    actor = f"api_key:{key_id(db, org)}"
    created = client.post(
        "/api/v1/webhook-subscriptions",
        json={"url": "https://crm.example/h", "events": ["cart.abandoned"]},
        headers=org.headers,
    )
    assert created.status_code == 201
    subscription_id = created.get_json()["subscription_id"]
    assert (
        client.delete(
            f"/api/v1/webhook-subscriptions/{subscription_id}", headers=org.headers
        ).status_code
        == 204
    )
    refused = client.post(
        "/api/v1/webhook-subscriptions", json={"url": "nope"}, headers=org.headers
    )
    assert refused.status_code == 400
    # Plain reads are not actions; reading personal data is.
    assert client.get("/api/v1/webhook-subscriptions", headers=org.headers).status_code == 200
    assert (
        client.get(
            "/api/v1/privacy/export",
            query_string={"email": "jane@example.com"},
            headers=org.headers,
        ).status_code
        == 200
    )
    # Unauthenticated requests have no org to be filed under.
    assert client.post("/api/v1/webhook-subscriptions", json={}).status_code == 401

    rows = entries(db, org.org_id)
    assert [(r["action"], r["status_code"]) for r in rows] == [
        ("POST /api/v1/webhook-subscriptions", 201),
        ("DELETE /api/v1/webhook-subscriptions/<id>", 204),
        ("POST /api/v1/webhook-subscriptions", 400),
        ("GET /api/v1/privacy/export", 200),
    ]
    assert {r["actor"] for r in rows} == {actor}
    assert rows[0]["target"] == subscription_id and rows[1]["target"] == subscription_id
    assert rows[0]["details"]["fields"] == ["events", "url"]
    assert rows[3]["details"]["query"] == ["email"]
    assert rows[0]["ip"] == "127.0.0.1"
    # Names of fields and parameters, never their values.
    assert "jane@example.com" not in str(rows) and "crm.example" not in str(rows)
    assert entries(db, make_org("quiet").org_id) == []


def test_audit_log_is_append_only(db, org):
    audit_id = audit.record(
        db, org.org_id, "cli:alice", "connections.add", "conn-1", {"platform": "shopify"}
    )
    for statement in (
        "UPDATE app.audit_log SET actor = 'mallory' WHERE audit_id = %s",
        "DELETE FROM app.audit_log WHERE audit_id = %s",
        "TRUNCATE app.audit_log",
    ):
        # The application role holds no grant for it: refused on privileges...
        with pytest.raises(
            psycopg.errors.InsufficientPrivilege, match="permission denied for table audit_log"
        ):
            with db.tenant(org.org_id) as conn:
                assert conn.execute("SELECT current_user AS u").fetchone()["u"] == APP_ROLE
                conn.execute(statement, (audit_id,) if "%s" in statement else ())
        # ...and the owning role, which holds every privilege, by the trigger.
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            with db.system() as conn:
                conn.execute(statement, (audit_id,) if "%s" in statement else ())
    [row] = entries(db, org.org_id)
    assert (row["actor"], row["action"], row["target"]) == (
        "cli:alice",
        "connections.add",
        "conn-1",
    )


def test_the_application_role_may_only_read_and_append_the_audit_log(db):
    with db.system() as conn:
        granted = {
            r["privilege_type"]
            for r in conn.execute(
                "SELECT privilege_type FROM information_schema.role_table_grants "
                "WHERE grantee = %s AND table_schema = 'app' AND table_name = 'audit_log'",
                (APP_ROLE,),
            ).fetchall()
        }
    assert granted == {"SELECT", "INSERT"}


def test_cli_actor_names_the_operator():
    assert audit.cli_actor().startswith("cli:")


def test_a_failing_audit_never_fails_the_request(db, client, org, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("audit database down")

    monkeypatch.setattr(audit, "record", broken)
    with caplog.at_level(logging.ERROR):
        response = client.post(
            "/api/v1/webhook-subscriptions",
            json={"url": "https://crm.example/h", "events": ["cart.abandoned"]},
            headers=org.headers,
        )
    assert response.status_code == 201
    assert any("AUDIT FAILURE" in r.getMessage() for r in caplog.records)
