"""Magento 2 / Adobe Commerce webhooks (``/api/webhooks/magento?store=<host>`` and the
connection's custom route): RSA-signed calls, the cart fetched with GraphQL from a local
server serving the fixture, quote and order events into the canonical tables."""

from __future__ import annotations

import base64
import json
from decimal import Decimal

import pytest
from conftest import fixture_bytes
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cartrecovery import tenancy
from integrations.magento.adapter import (
    HOOK_TOKEN_HEADER,
    SIGNATURE_HEADER,
    STORE_HEADER,
    MagentoAdapter,
)

HOST = "magento.example.test"
URL = f"/api/webhooks/magento?store={HOST}"
MASKED = "Qm9rTmFrZWRDYXJ0SWQxMjM0NTY3ODkw"
TOKEN = "mage_integration_token_fake"


@pytest.fixture(scope="module")
def keys():
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, pem


def signature(private, body: bytes, over_base64: bool = True) -> str:
    message = base64.b64encode(body) if over_base64 else body
    return base64.b64encode(private.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def connect(db, key, org_id, credentials, secret="mage_shared_token_0123"):
    with db.system() as conn:
        conn.execute(
            "UPDATE app.connections SET status = 'removed' WHERE platform = 'magento' "
            "AND shop_domain = %s AND org_id <> %s",
            (HOST, org_id),
        )
    return tenancy.add_connection(db, key, org_id, "magento", HOST, secret, credentials)


@pytest.fixture()
def waits(monkeypatch):
    asked: list[float] = []
    monkeypatch.setattr(MagentoAdapter, "sleep", staticmethod(asked.append))
    return asked


@pytest.fixture()
def store(db, runtime, org, recorder, keys, waits):
    org.connection_id = connect(
        db,
        runtime.encryption_key,
        org.org_id,
        {"base_url": recorder.url, "integration_token": TOKEN, "webhook_public_key_pem": keys[1]},
    )
    recorder.respond("POST", "/graphql", 200, fixture_bytes("magento_cart_graphql_response.json"))
    return org


def quote_event(name="observer.checkout_cart_save_after", **quote) -> bytes:
    body = {
        "entity_id": "412",
        "masked_id": MASKED,
        "customer_email": "Ari.Tan@example.com",
        "quote_currency_code": "USD",
        "updated_at": "2026-03-14 15:22:11",
        "created_at": "2026-03-14 15:20:00",
        **quote,
    }
    return json.dumps({"eventName": name, "data": {"quote": body}}).encode()


def order_event(name="observer.sales_order_place_after", **order) -> bytes:
    body = {
        "entity_id": "90",
        "increment_id": "000000123",
        "quote_id": "412",
        "customer_email": "ari.tan@example.com",
        "grand_total": "93.10",
        "order_currency_code": "USD",
        "status": "pending",
        "created_at": "2026-03-14 16:00:00",
        **order,
    }
    return json.dumps({"eventName": name, "data": {"order": body}}).encode()


def post(client, body: bytes, private=None, url=URL, headers=None, over_base64=True):
    sent = {"Content-Type": "application/json", **(headers or {})}
    if private is not None:
        sent[SIGNATURE_HEADER] = signature(private, body, over_base64)
    return client.post(url, data=body, headers=sent)


def cart_row(db, org_id, external_id="412"):
    with db.tenant(org_id) as conn:
        return conn.execute(
            "SELECT * FROM app.carts WHERE org_id = %s AND platform = 'magento' "
            "AND external_id = %s",
            (org_id, external_id),
        ).fetchone()


def n_events(db, org_id) -> int:
    with db.tenant(org_id) as conn:
        return conn.execute(
            "SELECT count(*) AS n FROM raw.events WHERE org_id = %s", (org_id,)
        ).fetchone()["n"]


def test_quote_then_order_end_to_end_with_graphql_cart(client, db, store, keys, recorder):
    res = post(client, quote_event(), keys[0])
    assert res.status_code == 200, res.json
    assert res.json["op"] == "success"  # what Adobe Commerce expects back

    [call] = recorder.find("POST", "/graphql")
    assert call["headers"]["Authorization"] == f"Bearer {TOKEN}"
    sent = json.loads(call["body"])
    assert sent["variables"] == {"id": MASKED}
    assert "cart(cart_id: $id)" in sent["query"]

    cart = cart_row(db, store.org_id)
    assert cart["email"] == "ari.tan@example.com"
    assert cart["total_price"] == Decimal("93.10") and cart["currency"] == "USD"
    assert cart["item_count"] == 3
    assert [i["sku"] for i in cart["line_items"]] == ["24-MB04", "WS12-M-Blue"]
    assert cart["line_items"][0]["price"] == "32.0"
    assert cart["cart_token"] == MASKED and cart["status"] == "active"
    assert cart["source_updated_at"].isoformat() == "2026-03-14T15:22:11+00:00"

    res = post(client, order_event(), keys[0])
    assert res.status_code == 200 and res.json["op"] == "success"
    cart = cart_row(db, store.org_id)
    assert cart["status"] == "converted"
    with db.tenant(store.org_id) as conn:
        order = conn.execute(
            "SELECT * FROM app.orders WHERE org_id = %s", (store.org_id,)
        ).fetchone()
        events = conn.execute(
            "SELECT topic, payload, headers FROM raw.events WHERE org_id = %s ORDER BY received_at",
            (store.org_id,),
        ).fetchall()
    assert order["external_id"] == "000000123" and order["cart_id"] == cart["cart_id"]
    assert order["total_price"] == Decimal("93.10")
    assert [e["topic"] for e in events] == [
        "observer.checkout_cart_save_after",
        "observer.sales_order_place_after",
    ]
    assert events[0]["payload"]["cart"]["email"] == "ari.tan@example.com"
    assert all(SIGNATURE_HEADER not in {k.lower() for k in e["headers"]} for e in events)


def test_raw_body_signature_is_accepted_as_a_fallback(client, db, store, keys):
    res = post(client, quote_event(), keys[0], over_base64=False)
    assert res.status_code == 200 and res.json["status"] == "ok"


def test_payload_fields_are_used_without_a_masked_id(client, db, store, keys, recorder):
    body = quote_event(
        masked_id=None,
        grand_total="15.00",
        items=[{"sku": "A-1", "name": "Mug", "qty": 3, "price": "5.00"}],
    )
    assert post(client, body, keys[0]).status_code == 200
    cart = cart_row(db, store.org_id)
    assert cart["total_price"] == Decimal("15.00") and cart["item_count"] == 3
    assert recorder.find("POST", "/graphql") == []


def test_graphql_429_retry_after_is_honoured(client, db, store, keys, recorder, waits):
    recorder.responses[("POST", "/graphql")].insert(
        0, (429, {"Retry-After": "1", "Content-Type": "application/json"}, b"{}")
    )
    assert post(client, quote_event(), keys[0]).status_code == 200
    assert waits == [1.0]
    assert len(recorder.find("POST", "/graphql")) == 2
    assert cart_row(db, store.org_id)["item_count"] == 3


def test_graphql_down_keeps_the_payload_and_never_fails_the_call(
    client, db, store, keys, recorder, waits
):
    recorder.responses[("POST", "/graphql")] = [(500, {}, b"oops")]
    res = post(client, quote_event(), keys[0])
    assert res.status_code == 200 and res.json["op"] == "success"
    cart = cart_row(db, store.org_id)
    assert cart["email"] == "ari.tan@example.com" and cart["item_count"] == 0


def test_unknown_cart_in_graphql_keeps_the_quote(client, db, store, keys, recorder):
    recorder.responses[("POST", "/graphql")] = [
        (
            200,
            {"Content-Type": "application/json"},
            b'{"errors": [{"message": "Could not find a cart"}], "data": {"cart": null}}',
        )
    ]
    assert post(client, quote_event(), keys[0]).status_code == 200
    assert cart_row(db, store.org_id)["email"] == "ari.tan@example.com"


def test_order_before_quote_ends_converted(client, db, store, keys):
    assert post(client, order_event(), keys[0]).status_code == 200
    assert post(client, quote_event(), keys[0]).status_code == 200
    cart = cart_row(db, store.org_id)
    assert cart["status"] == "converted"


def test_ids_sent_as_numbers_are_kept_as_text(client, db, store, keys):
    # Commerce writes a column as a string or a number depending on version and field.
    assert post(client, quote_event(entity_id=412, customer_id=7), keys[0]).status_code == 200
    assert (
        post(client, order_event(entity_id=90, increment_id=123, quote_id=412), keys[0]).status_code
        == 200
    )
    cart = cart_row(db, store.org_id, "412")
    assert cart["status"] == "converted"
    with db.tenant(store.org_id) as conn:
        order = conn.execute(
            "SELECT external_id, cart_id FROM app.orders WHERE org_id = %s", (store.org_id,)
        ).fetchone()
    assert (order["external_id"], order["cart_id"]) == ("123", cart["cart_id"])


def test_redelivery_is_stored_once(client, db, store, keys, recorder):
    body = quote_event()
    for _ in range(3):
        assert post(client, body, keys[0]).status_code == 200
    assert n_events(db, store.org_id) == 1
    assert len(recorder.find("POST", "/graphql")) == 3  # fetched, then found a duplicate


@pytest.mark.parametrize("change", ["missing", "garbage", "other_key", "tampered"])
def test_bad_signature_is_401_and_stores_nothing(client, db, store, keys, change):
    body = quote_event()
    headers = {}
    if change == "garbage":
        headers[SIGNATURE_HEADER] = "not base64 !!"
    elif change == "other_key":
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        headers[SIGNATURE_HEADER] = signature(other, body)
    elif change == "tampered":
        headers[SIGNATURE_HEADER] = signature(keys[0], body)
        body = body.replace(b"412", b"413")
    res = post(client, body, headers=headers)
    assert res.status_code == 401
    assert n_events(db, store.org_id) == 0


def test_shared_token_when_no_public_key_is_configured(client, db, runtime, org, recorder):
    connect(
        db,
        runtime.encryption_key,
        org.org_id,
        {"base_url": recorder.url},
        secret="mage_shared_token_0123",
    )
    recorder.respond("POST", "/graphql", 200, fixture_bytes("magento_cart_graphql_response.json"))
    assert post(client, quote_event()).status_code == 401
    res = post(client, quote_event(), headers={HOOK_TOKEN_HEADER: "mage_shared_token_0123"})
    assert res.status_code == 200
    # A store without an integration token still gets guest carts through GraphQL.
    assert "Authorization" not in recorder.find("POST", "/graphql")[0]["headers"]


def test_store_by_header_and_by_custom_route(client, db, store, keys):
    body = quote_event()
    res = post(client, body, keys[0], url="/api/webhooks/magento", headers={STORE_HEADER: HOST})
    assert res.status_code == 200
    res = post(client, order_event(), keys[0], url=f"/api/webhooks/custom/{store.connection_id}")
    assert res.status_code == 200 and res.json["op"] == "success"
    assert cart_row(db, store.org_id)["status"] == "converted"


def test_unknown_store_is_404_and_unnamed_store_401(client, db, store, keys):
    answers = [
        post(client, quote_event(), keys[0], url=f"/api/webhooks/magento?store={h}")
        for h in ("nope.example", "other.example")
    ]
    assert [a.status_code for a in answers] == [404, 404]
    assert answers[0].json == answers[1].json and HOST not in json.dumps(answers[0].json)
    assert post(client, quote_event(), keys[0], url="/api/webhooks/magento").status_code == 401
    assert n_events(db, store.org_id) == 0


@pytest.mark.parametrize(
    "body",
    [
        b'{"eventName": "observer.checkout_cart_save_after", "data": {"quote": {"entity_',
        b"<xml/>",
        b"[]",
        b'{"eventName": "observer.checkout_cart_save_after"}',
        b'{"eventName": 5, "data": {}}',
        b'{"eventName": "observer.checkout_cart_save_after", "data": {"other": 1}}',
        b'{"eventName": "observer.checkout_cart_save_after", "data": {"quote": {}}}',
        b'{"eventName": "observer.checkout_cart_save_after", "data": {"quote": '
        b'{"entity_id": "1", "updated_at": "yesterday"}}}',
        b'{"eventName": "observer.sales_order_place_after", "data": {"order": {"quote_id": "1"}}}',
        b'{"eventName": "observer.sales_order_place_after", "data": {"order": '
        b'{"increment_id": "1", "grand_total": -5}}}',
        # Decimal reads "NaN"/"Infinity" strings: the canonical bounds must refuse them (400,
        # not an arithmetic error). No masked_id: the payload's own items are read.
        *(
            b'{"eventName": "observer.checkout_cart_save_after", "data": {"quote": '
            b'{"entity_id": "1", "items": [{"qty": %s, "price": "1"}]}}}' % qty
            for qty in (b'"NaN"', b'"sNaN"', b'"Infinity"', b'"-1"', b'"1e40"')
        ),
        b'{"eventName": "observer.checkout_cart_save_after", "data": {"quote": '
        b'{"entity_id": "1", "items": [{"qty": "1", "price": "NaN"}]}}}',
        b'{"eventName": "observer.checkout_cart_save_after", "data": {"quote": '
        b'{"entity_id": "1", "grand_total": "Infinity", "items": []}}}',
        b'{"eventName": "observer.sales_order_place_after", "data": {"order": '
        b'{"increment_id": "1", "grand_total": "NaN"}}}',
    ],
)
def test_malformed_bodies_are_400_and_store_nothing(client, db, store, keys, body):
    res = post(client, body, keys[0])
    assert res.status_code == 400, res.json
    assert res.json["error"]["code"] in ("invalid_payload", "invalid_json")
    assert n_events(db, store.org_id) == 0


def test_other_events_are_kept_raw_and_acknowledged(client, db, store, keys):
    body = json.dumps(
        {"eventName": "com.adobe.commerce.observer.customer_login", "data": {"customer": {"id": 1}}}
    ).encode()
    res = post(client, body, keys[0])
    assert res.status_code == 200 and res.json["op"] == "success"
    with db.tenant(store.org_id) as conn:
        row = conn.execute(
            "SELECT topic FROM raw.events WHERE org_id = %s", (store.org_id,)
        ).fetchone()
    assert row["topic"] == "observer.customer_login"


@pytest.mark.parametrize(
    "name",
    [
        "sales_order_place_after",  # bare, as in Adobe's example
        "observer.sales_order_place_after",
        "com.adobe.commerce.observer.sales_order_place_after",
    ],
)
def test_every_form_of_an_event_name_is_read_alike(client, db, store, keys, name):
    assert post(client, quote_event(name="checkout_cart_save_after"), keys[0]).status_code == 200
    res = post(client, order_event(name=name), keys[0])
    assert res.status_code == 200, res.json
    assert cart_row(db, store.org_id)["status"] == "converted"
    with db.tenant(store.org_id) as conn:
        topics = [
            r["topic"]
            for r in conn.execute(
                "SELECT topic FROM raw.events WHERE org_id = %s ORDER BY received_at",
                (store.org_id,),
            ).fetchall()
        ]
    assert topics == ["observer.checkout_cart_save_after", "observer.sales_order_place_after"]
