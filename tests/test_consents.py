"""The consent ledger: POST /api/v1/consents, normalisation, and append-only in the database."""

from __future__ import annotations

import psycopg
import pytest

from cartrecovery import consents, tenancy

PATH = "/api/v1/consents"


def ledger(db, org_id):
    with db.system() as conn:
        return conn.execute(
            "SELECT channel, address, status, source, wording, host(ip) AS ip, user_agent "
            "FROM app.consents WHERE org_id = %s ORDER BY recorded_at",
            (org_id,),
        ).fetchall()


def test_post_records_a_normalised_entry(client, db, org):
    r = client.post(
        PATH,
        headers=org.headers,
        json={
            "channel": "sms",
            "address": "+1 (212) 555-0123",
            "status": "granted",
            "source": "checkout",
            "wording": "Text me cart reminders. Reply STOP to stop.",
            "ip": "203.0.113.7",
            "user_agent": "Mozilla/5.0",
        },
    )
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["address"] == "+12125550123" and body["status"] == "granted"
    assert body["consent_id"] and body["recorded_at"]
    client.post(
        PATH,
        headers=org.headers,
        json={
            "channel": "email",
            "address": " Jane@Example.COM ",
            "status": "withdrawn",
            "source": "api",
        },
    )
    assert ledger(db, org.org_id) == [
        {
            "channel": "sms",
            "address": "+12125550123",
            "status": "granted",
            "source": "checkout",
            "wording": "Text me cart reminders. Reply STOP to stop.",
            "ip": "203.0.113.7",
            "user_agent": "Mozilla/5.0",
        },
        {
            "channel": "email",
            "address": "jane@example.com",
            "status": "withdrawn",
            "source": "api",
            "wording": None,
            "ip": None,
            "user_agent": None,
        },
    ]
    listed = client.get(
        f"{PATH}?channel=email&address=JANE@example.com", headers=org.headers
    ).get_json()["consents"]
    assert [c["status"] for c in listed] == ["withdrawn"]


@pytest.mark.parametrize(
    "body",
    [
        {"channel": "sms", "address": "555-0123", "status": "granted", "source": "api"},
        {"channel": "sms", "address": "+1 212 555", "status": "granted", "source": "api"},
        {"channel": "email", "address": "not-an-email", "status": "granted", "source": "api"},
        {"channel": "fax", "address": "+12125550123", "status": "granted", "source": "api"},
        {"channel": "email", "address": "a@b.co", "status": "maybe", "source": "api"},
        {"channel": "email", "address": "a@b.co", "status": "granted"},
        {
            "channel": "email",
            "address": "a@b.co",
            "status": "granted",
            "source": "api",
            "ip": "999.1.1.1",
        },
        {"channel": "email", "address": "a@b.co", "status": "granted", "source": "api", "x": 1},
    ],
)
def test_bad_input_is_400_and_stores_nothing(client, db, org, body):
    r = client.post(PATH, headers=org.headers, json=body)
    assert r.status_code == 400, r.get_json()
    assert r.get_json()["error"]["code"] == "validation_error"
    assert ledger(db, org.org_id) == []


def test_needs_a_write_key(client, db, org):
    read_key = tenancy.create_api_key(db, org.org_id, "read")
    body = {"channel": "email", "address": "a@b.co", "status": "granted", "source": "api"}
    assert client.post(PATH, json=body).status_code == 401
    r = client.post(PATH, json=body, headers={"Authorization": f"Bearer {read_key}"})
    assert r.status_code == 403
    assert ledger(db, org.org_id) == []


def test_latest_entry_decides_and_orgs_are_separate(db, org, make_org):
    other = make_org("other")
    with db.tenant(org.org_id) as conn:
        consents.record_consent(
            conn,
            org.org_id,
            channel="sms",
            address="+12125550123",
            status="granted",
            source="checkout",
        )
        consents.record_consent(
            conn,
            org.org_id,
            channel="sms",
            address="+1 212-555-0123",
            status="withdrawn",
            source="sms_keyword",
        )
        assert consents.consent_status(conn, org.org_id, "sms", "+12125550123") == "withdrawn"
    with db.tenant(other.org_id) as conn:
        assert consents.consent_status(conn, other.org_id, "sms", "+12125550123") is None
        assert conn.execute("SELECT count(*) AS n FROM app.consents").fetchone()["n"] == 0


def test_ledger_refuses_update_and_delete(db, org):
    with db.tenant(org.org_id) as conn:
        consent_id = consents.record_consent(
            conn, org.org_id, channel="email", address="a@b.co", status="granted", source="api"
        )
    for statement in (
        "UPDATE app.consents SET status = 'withdrawn' WHERE consent_id = %s",
        "DELETE FROM app.consents WHERE consent_id = %s",
    ):
        # Even the owning role (no RLS) is refused: the trigger, not a grant, protects it.
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            with db.system() as conn:
                conn.execute(statement, (consent_id,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            with db.tenant(org.org_id) as conn:
                conn.execute(statement, (consent_id,))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        with db.system() as conn:
            conn.execute("TRUNCATE app.consents")
    assert ledger(db, org.org_id)[0]["status"] == "granted"


def test_erasure_setting_allows_delete_in_its_transaction_only(db, org):
    with db.tenant(org.org_id) as conn:
        consents.record_consent(
            conn, org.org_id, channel="email", address="gone@b.co", status="granted", source="api"
        )
        consents.record_consent(
            conn, org.org_id, channel="email", address="kept@b.co", status="granted", source="api"
        )
    with db.tenant(org.org_id) as conn:
        conn.execute("SELECT set_config(%s, 'on', true)", (consents.ERASURE_SETTING,))
        conn.execute("DELETE FROM app.consents WHERE address = 'gone@b.co'")
    assert [r["address"] for r in ledger(db, org.org_id)] == ["kept@b.co"]
    # The setting was transaction-local: the next transaction is refused again.
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        with db.tenant(org.org_id) as conn:
            conn.execute("DELETE FROM app.consents WHERE address = 'kept@b.co'")
