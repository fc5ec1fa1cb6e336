from decimal import Decimal
from uuid import uuid4

import psycopg
import pytest
from cryptography.exceptions import InvalidTag

from cartrecovery import crypto, tenancy
from cartrecovery.canonical import CanonicalCart, CanonicalOrder, InvalidCanonical, LineItem


def test_api_key_is_stored_hashed_and_verifies(db, org):
    key = org.api_key
    assert tenancy.verify_api_key(db, key).org_id == org.org_id
    assert tenancy.verify_api_key(db, key + "x") is None
    assert tenancy.verify_api_key(db, "cr_" + uuid4().hex + "_" + "a" * 43) is None
    with db.system() as conn:
        rows = conn.execute(
            "SELECT key_hash, prefix FROM app.api_keys WHERE org_id = %s", (org.org_id,)
        ).fetchall()
    assert rows and all(key.encode() not in bytes(r["key_hash"]) for r in rows)


def test_connection_secret_encrypted_at_rest(db, org):
    key = crypto.load_key(None, "k")
    tenancy.add_connection(
        db, key, org.org_id, "shopify", f"{org.org_id.hex}.myshopify.com", "shpss_plain_secret"
    )
    with db.system() as conn:
        row = conn.execute(
            "SELECT secret_ciphertext FROM app.connections WHERE org_id = %s", (org.org_id,)
        ).fetchone()
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


def test_canonical_records_normalise_and_refuse_what_the_tables_cannot_hold():
    connection = uuid4()
    cart = CanonicalCart(
        platform="example",
        external_id=412,
        connection_id=str(connection),
        email=" Ari.Tan@Example.com ",
        currency="usd",
        total_price="93.10",
        line_items=[LineItem(product_id=1842, quantity=2, price=44.0)],
        source_updated_at="2026-03-14T15:22:11+00:00",
    )
    assert (cart.external_id, cart.connection_id, cart.email, cart.currency) == (
        "412",
        connection,
        "ari.tan@example.com",
        "USD",
    )
    assert cart.total_price == Decimal("93.10") and cart.line_items[0].product_id == "1842"
    assert cart.line_items[0].price == Decimal("44.0") and cart.has_content
    assert cart.source_updated_at.isoformat() == "2026-03-14T15:22:11+00:00"
    assert CanonicalCart.validate(cart.to_dict()) == cart

    for bad in (
        {"external_id": " "},
        {"total_price": "NaN"},
        {"total_price": 10**12},
        {"total_price": -1},
        {"connection_id": "not-a-uuid"},
        {"connection_id": 5},
        {"line_items": [{"quantity": 1}]},
        {"source_updated_at": "yesterday"},
        {"restore_url": 5},
        {"accepts_marketing": "yes"},
        {"line_items": [LineItem(quantity=2**31 - 1), LineItem(quantity=1)]},
    ):
        with pytest.raises(InvalidCanonical):
            CanonicalCart(**{"platform": "example", "external_id": "c1", **bad})
    for bad in (
        {"quantity": "3"},
        {"quantity": True},
        {"quantity": -1},
        {"price": "Infinity"},
        {"price": True},
        {"sku": ["x"]},
    ):
        with pytest.raises(InvalidCanonical):
            LineItem(**bad)
    with pytest.raises(InvalidCanonical):
        CanonicalOrder(platform="example", external_id="o1", discount_codes=["x"] * 101)
    with pytest.raises(InvalidCanonical):
        CanonicalCart.validate(
            {"platform": "example", "external_id": "c1", "line_items": [{"quantity": "many"}]}
        )
