from uuid import uuid4

import psycopg
import pytest
from cryptography.exceptions import InvalidTag

from cartrecovery import crypto, tenancy


def test_api_key_is_stored_hashed_and_verifies(db, org):
    key = org.api_key
    assert tenancy.verify_api_key(db, key).org_id == org.org_id
    assert tenancy.verify_api_key(db, key + "x") is None
    assert tenancy.verify_api_key(db, "cr_" + uuid4().hex + "_" + "a" * 43) is None
    with db.system() as conn:
        rows = conn.execute("SELECT key_hash, prefix FROM app.api_keys WHERE org_id = %s",
                            (org.org_id,)).fetchall()
    assert rows and all(key.encode() not in bytes(r["key_hash"]) for r in rows)


def test_connection_secret_encrypted_at_rest(db, org):
    key = crypto.load_key(None, "k")
    tenancy.add_connection(db, key, org.org_id, "shopify", f"{org.org_id.hex}.myshopify.com",
                           "shpss_plain_secret")
    with db.system() as conn:
        row = conn.execute("SELECT secret_ciphertext FROM app.connections WHERE org_id = %s",
                           (org.org_id,)).fetchone()
    assert b"shpss_plain_secret" not in bytes(row["secret_ciphertext"])
    found = tenancy.find_connection(db, key, "shopify", f"{org.org_id.hex}.MyShopify.com")
    assert found.secret == "shpss_plain_secret"
    with pytest.raises(InvalidTag):
        crypto.decrypt(crypto.load_key(None, "other"), row["secret_ciphertext"])


def test_row_level_security_hides_other_orgs(db, make_org):
    a, b = make_org("a"), make_org("b")
    with db.tenant(b.org_id) as conn:
        assert conn.execute("SELECT count(*) AS n FROM app.orgs").fetchone()["n"] == 1
        seen = conn.execute("SELECT org_id FROM app.api_keys").fetchall()
        assert {r["org_id"] for r in seen} == {b.org_id}
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        with db.tenant(b.org_id) as conn:
            conn.execute("INSERT INTO app.campaigns (org_id, name) VALUES (%s, 'x')", (a.org_id,))
