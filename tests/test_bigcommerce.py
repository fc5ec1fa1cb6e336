"""BigCommerce webhooks (``/api/webhooks/bigcommerce``): fixture callbacks end to end into the
canonical tables, with the cart and order fetched from a local server standing in for the
store API (including a 429 with Retry-After that the client honours)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from decimal import Decimal

import pytest
from conftest import fixture_bytes, fixture_headers, fixture_vectors

from cartrecovery import tenancy
from cartrecovery.canonical import CanonicalCart
from integrations.bigcommerce.adapter import HOOK_TOKEN_HEADER, BigCommerceAdapter

URL = "/api/webhooks/bigcommerce"
STORE = "x7k2m9q4pd"
CART_ID = "3c9f2a1e-7b4d-4e8a-9c1f-5a6b7c8d9e0f"
ORDER_ID = "10457"
CART_PATH = f"/stores/{STORE}/v3/carts/{CART_ID}"
ORDER_PATH = f"/stores/{STORE}/v2/orders/{ORDER_ID}"
VECTORS = fixture_vectors()["bigcommerce"]
CLIENT_SECRET = VECTORS["client_secret"]
HOOK_TOKEN = VECTORS["custom_header_set_at_creation"][HOOK_TOKEN_HEADER]
ACCESS_TOKEN = "bc_api_token_fake_123"

# A v2 order as BigCommerce describes it [K]: invented values, money as decimal strings.
V2_ORDER = {
    "id": 10457,
    "cart_id": CART_ID,
    "customer_id": 0,
    "status": "Awaiting Fulfillment",
    "status_id": 11,
    "payment_status": "captured",
    "total_inc_tax": "129.5000",
    "currency_code": "USD",
    "date_created": "Sat, 14 Mar 2026 17:10:12 +0000",
    "date_modified": "Sat, 14 Mar 2026 17:10:13 +0000",
    "billing_address": {
        "first_name": "Sam",
        "last_name": "Lee",
        "email": "sam.lee@example.com",
        "phone": "+1 415 555 0100",
    },
}


def connect(db, key, org_id, credentials, store=STORE, secret=HOOK_TOKEN):
    """Connect ``store`` to ``org_id``, first removing it from other orgs (every test gets a
    fresh org, and a store hash is active in one org at a time)."""
    with db.system() as conn:
        conn.execute(
            "UPDATE app.connections SET status = 'removed' WHERE platform = 'bigcommerce' "
            "AND shop_domain = %s AND org_id <> %s",
            (store, org_id),
        )
    return tenancy.add_connection(db, key, org_id, "bigcommerce", store, secret, credentials)


@pytest.fixture()
def waits(monkeypatch):
    """The waits the API client was asked for (nothing actually waits)."""
    asked: list[float] = []
    monkeypatch.setattr(BigCommerceAdapter, "sleep", staticmethod(asked.append))
    return asked


@pytest.fixture()
def store(db, runtime, org, recorder, waits):
    # The fixture vectors carry fixed 2026 timestamps: the tolerance is off for them.
    org.credentials = {
        "access_token": ACCESS_TOKEN,
        "client_secret": CLIENT_SECRET,
        "api_base_url": recorder.url,
        "signature_tolerance_seconds": 0,
    }
    org.connection_id = connect(db, runtime.encryption_key, org.org_id, org.credentials)
    recorder.respond("GET", CART_PATH, 200, fixture_bytes("bigcommerce_cart_v3.json"))
    recorder.respond("GET", ORDER_PATH, 200, V2_ORDER)
    return org


def deliver(client, name, body=None, headers=None, query=""):
    sent = fixture_headers("bigcommerce", name) if headers is None else headers
    return client.post(
        URL + query, data=fixture_bytes(name) if body is None else body, headers=sent
    )


def sign(body: bytes, msg_id="msg_test", ts="1773504132", secret=CLIENT_SECRET) -> dict:
    digest = hmac.new(secret.encode(), f"{msg_id}.{ts}.".encode() + body, hashlib.sha256)
    return {
        "Content-Type": "application/json",
        HOOK_TOKEN_HEADER: HOOK_TOKEN,
        "webhook-id": msg_id,
        "webhook-timestamp": ts,
        "webhook-signature": "v1," + base64.b64encode(digest.digest()).decode(),
    }


def cart_row(db, org_id):
    with db.tenant(org_id) as conn:
        return conn.execute(
            "SELECT * FROM app.carts WHERE org_id = %s AND platform = 'bigcommerce' "
            "AND external_id = %s",
            (org_id, CART_ID),
        ).fetchone()


def counts(db, org_id) -> dict:
    with db.tenant(org_id) as conn:
        return {
            t: conn.execute(
                f"SELECT count(*) AS n FROM {t} WHERE org_id = %s", (org_id,)
            ).fetchone()["n"]
            for t in ("raw.events", "app.carts", "app.orders", "app.customers")
        }


def test_cart_lifecycle_end_to_end_with_snapshot_and_retry_after(
    client, db, store, recorder, waits
):
    # The first cart fetch is refused with 429 Retry-After: 1; the client waits and retries.
    recorder.responses[("GET", CART_PATH)].insert(
        0, (429, {"Retry-After": "1", "Content-Type": "application/json"}, b"{}")
    )
    res = deliver(client, "bigcommerce_cart_created.json")
    assert res.status_code == 200, res.json
    assert waits == [1.0]
    fetches = recorder.find("GET", CART_PATH)
    assert len(fetches) == 2
    assert fetches[-1]["headers"]["X-Auth-Token"] == ACCESS_TOKEN
    assert "include=redirect_urls" in fetches[-1]["path"]

    cart = cart_row(db, store.org_id)
    assert cart["email"] == "sam.lee@example.com"
    assert cart["total_price"] == Decimal("119.98") and cart["currency"] == "USD"
    assert cart["item_count"] == 2
    assert cart["line_items"][0]["sku"] == "HOOD-NVY-L"
    assert cart["line_items"][0]["price"] == "59.99"
    assert cart["restore_url"].startswith("https://shop.example.com/cart.php?action=loadInCheckout")
    assert cart["connection_id"] == store.connection_id
    assert cart["status"] == "active"

    # Same hash as "created" (BigCommerce hashes only {type, id}) but another event.
    assert deliver(client, "bigcommerce_cart_updated.json").json["status"] == "ok"
    # The platform's abandonment signal is recorded; our own timeout decides.
    assert deliver(client, "bigcommerce_cart_abandoned.json").json["status"] == "ok"
    cart = cart_row(db, store.org_id)
    assert cart["status"] == "active"
    assert cart["last_activity_at"] <= cart["source_updated_at"]  # idle since updated_time

    assert deliver(client, "bigcommerce_cart_converted.json").json["status"] == "ok"
    assert deliver(client, "bigcommerce_order_created.json").json["status"] == "ok"
    cart = cart_row(db, store.org_id)
    assert cart["status"] == "converted"
    with db.tenant(store.org_id) as conn:
        orders = conn.execute(
            "SELECT * FROM app.orders WHERE org_id = %s", (store.org_id,)
        ).fetchall()
        events = conn.execute(
            "SELECT topic, dedup_key, payload, headers, cart_id FROM raw.events "
            "WHERE org_id = %s ORDER BY received_at",
            (store.org_id,),
        ).fetchall()
    assert len(orders) == 1
    assert orders[0]["external_id"] == ORDER_ID and orders[0]["cart_id"] == cart["cart_id"]
    assert orders[0]["total_price"] == Decimal("129.50")
    assert [e["topic"] for e in events] == [
        "store/cart/created",
        "store/cart/updated",
        "store/cart/abandoned",
        "store/cart/converted",
        "store/order/created",
    ]
    # The snapshot is kept with the raw event; the hook token and signature are not.
    assert events[0]["payload"]["cart"]["redirect_urls"]["checkout_url"]
    assert events[0]["payload"]["callback"]["hash"] == "303a21f26bdf4ee58a5cfcf833bcb80c8fd86c18"
    assert all(HOOK_TOKEN not in json.dumps(e["headers"]) for e in events)
    assert all("webhook-signature" not in {k.lower() for k in e["headers"]} for e in events)
    assert events[0]["cart_id"] == cart["cart_id"]


def test_redelivery_is_stored_once(client, db, store, recorder):
    for _ in range(3):
        res = deliver(client, "bigcommerce_cart_created.json")
        assert res.status_code == 200
    assert res.json["status"] == "duplicate"
    assert counts(db, store.org_id)["raw.events"] == 1
    assert counts(db, store.org_id)["app.carts"] == 1


def test_conversion_before_the_cart_events_still_converts_the_cart(client, db, store, recorder):
    # converted arrives first; by the time "updated" is fetched the cart is deleted (404).
    assert deliver(client, "bigcommerce_cart_converted.json").status_code == 200
    with db.tenant(store.org_id) as conn:
        order = conn.execute(
            "SELECT cart_id FROM app.orders WHERE org_id = %s", (store.org_id,)
        ).fetchone()
    assert order["cart_id"] is None
    recorder.responses[("GET", CART_PATH)] = [
        (404, {"Content-Type": "application/json"}, b'{"status": 404}')
    ]
    assert deliver(client, "bigcommerce_cart_updated.json").status_code == 200
    cart = cart_row(db, store.org_id)
    assert cart["status"] == "converted"
    with db.tenant(store.org_id) as conn:
        order = conn.execute(
            "SELECT cart_id FROM app.orders WHERE org_id = %s", (store.org_id,)
        ).fetchone()
    assert order["cart_id"] == cart["cart_id"]


def test_late_created_after_conversion_keeps_the_cart_converted(client, db, store):
    assert deliver(client, "bigcommerce_cart_updated.json").status_code == 200
    assert deliver(client, "bigcommerce_cart_converted.json").status_code == 200
    assert deliver(client, "bigcommerce_cart_created.json").status_code == 200
    cart = cart_row(db, store.org_id)
    assert cart["status"] == "converted" and cart["email"] == "sam.lee@example.com"


@pytest.mark.parametrize(
    "change", ["wrong_token", "no_token", "bad_signature", "signature_other_key"]
)
def test_bad_authentication_is_401_and_stores_nothing(client, db, store, recorder, change):
    headers = fixture_headers("bigcommerce", "bigcommerce_cart_created.json")
    body = fixture_bytes("bigcommerce_cart_created.json")
    if change == "wrong_token":
        headers[HOOK_TOKEN_HEADER] = "hk_wrong"
    elif change == "no_token":
        del headers[HOOK_TOKEN_HEADER]
    elif change == "bad_signature":
        headers["webhook-signature"] = "v1," + base64.b64encode(b"x" * 32).decode()
    else:
        headers = sign(body, secret="another_client_secret")
    res = deliver(client, "bigcommerce_cart_created.json", headers=headers)
    assert res.status_code == 401
    assert res.json["error"]["code"] == "invalid_signature"
    assert counts(db, store.org_id)["raw.events"] == 0
    assert recorder.find("GET", CART_PATH) == []  # nothing fetched before authentication


def test_signature_is_optional_and_any_listed_signature_may_match(client, db, store):
    body = fixture_bytes("bigcommerce_cart_created.json")
    headers = fixture_headers("bigcommerce", "bigcommerce_cart_created.json")
    headers["webhook-signature"] = "v1,AAAA " + headers["webhook-signature"]
    assert deliver(client, "x", body=body, headers=headers).status_code == 200
    token_only = {"Content-Type": "application/json", HOOK_TOKEN_HEADER: HOOK_TOKEN}
    res = deliver(
        client, "x", body=fixture_bytes("bigcommerce_cart_updated.json"), headers=token_only
    )
    assert res.status_code == 200 and res.json["status"] == "ok"


def test_signature_timestamp_tolerance(client, db, runtime, org, recorder, monkeypatch, waits):
    credentials = {
        "access_token": ACCESS_TOKEN,
        "client_secret": CLIENT_SECRET,
        "api_base_url": recorder.url,
    }  # default tolerance: 300 s
    connect(db, runtime.encryption_key, org.org_id, credentials)
    recorder.respond("GET", CART_PATH, 200, fixture_bytes("bigcommerce_cart_v3.json"))
    monkeypatch.setattr(BigCommerceAdapter, "clock", staticmethod(lambda: 1773504132 + 3600))
    assert deliver(client, "bigcommerce_cart_created.json").status_code == 401
    monkeypatch.setattr(BigCommerceAdapter, "clock", staticmethod(lambda: 1773504132 + 60))
    assert deliver(client, "bigcommerce_cart_created.json").status_code == 200


def test_secret_rotation_keeps_the_previous_token_valid(client, db, runtime, store):
    tenancy.rotate_secret(
        db, runtime.encryption_key, store.org_id, store.connection_id, "hk_new_token_0123456789"
    )
    assert deliver(client, "bigcommerce_cart_created.json").status_code == 200
    headers = fixture_headers("bigcommerce", "bigcommerce_cart_updated.json")
    headers[HOOK_TOKEN_HEADER] = "hk_new_token_0123456789"
    assert deliver(client, "bigcommerce_cart_updated.json", headers=headers).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        b'{"scope": "store/cart/created", "data": {"type": "cart", "id": "3c9f',  # truncated
        b"not json at all",
        b'["a", "list"]',
        b'{"scope": "store/cart/created", "producer": "stores/x7k2m9q4pd"}',  # no data
        b'{"scope": "store/cart/created", "data": {"id": "../../v2/orders"}, '
        b'"producer": "stores/x7k2m9q4pd"}',
        b'{"scope": "store/cart/converted", "data": {"id": "3c9f2a1e", "orderId": "x"}, '
        b'"producer": "stores/x7k2m9q4pd"}',
        b'{"scope": "store/cart/created", "data": {"id": "abc"}, "producer": "stores/other"}',
        b'{"scope": "store/cart/created", "data": {"id": "a\\u0000b"}, '
        b'"producer": "stores/x7k2m9q4pd"}',
        b'{"scope": "store/cart/created", "data": {"id": "abc"}, "created_at": NaN, '
        b'"producer": "stores/x7k2m9q4pd"}',
    ],
)
def test_malformed_bodies_are_400_and_store_nothing(client, db, store, recorder, body):
    headers = {"Content-Type": "application/json", HOOK_TOKEN_HEADER: HOOK_TOKEN}
    res = deliver(client, "x", body=body, headers=headers, query=f"?store={STORE}")
    assert res.status_code == 400, res.json
    assert res.is_json and res.json["error"]["code"] in ("invalid_payload", "invalid_json")
    assert counts(db, store.org_id)["raw.events"] == 0
    assert not [r for r in recorder.requests if "../" in r["path"]]


def test_unknown_store_is_404_and_says_nothing_about_other_stores(client, db, store):
    answers = []
    for other in ("nosuchstore1", "zzzz9999"):
        body = fixture_bytes("bigcommerce_cart_created.json").replace(
            b"stores/x7k2m9q4pd", f"stores/{other}".encode()
        )
        res = deliver(client, "x", body=body, headers=sign(body))
        assert res.status_code == 404
        answers.append(res.json)
    assert answers[0] == answers[1]
    assert "x7k2m9q4pd" not in json.dumps(answers[0])
    assert counts(db, store.org_id)["raw.events"] == 0


def test_store_api_down_is_503_and_stores_nothing_so_bigcommerce_retries(
    client, db, store, recorder, waits
):
    recorder.responses[("GET", CART_PATH)] = [(503, {"Content-Type": "application/json"}, b"{}")]
    res = deliver(client, "bigcommerce_cart_created.json")
    assert res.status_code == 503 and res.json["error"]["code"] == "store_api_unavailable"
    assert len(recorder.find("GET", CART_PATH)) == 3  # bounded attempts
    assert waits == [0.5, 1.0]  # exponential backoff without Retry-After
    assert counts(db, store.org_id)["raw.events"] == 0
    # Later the API answers, and the redelivery goes through.
    recorder.responses[("GET", CART_PATH)] = [
        (200, {"Content-Type": "application/json"}, fixture_bytes("bigcommerce_cart_v3.json"))
    ]
    assert deliver(client, "bigcommerce_cart_created.json").json["status"] == "ok"


def test_without_api_token_the_event_is_kept_with_a_bare_cart(client, db, runtime, org, recorder):
    connect(
        db,
        runtime.encryption_key,
        org.org_id,
        {"client_secret": CLIENT_SECRET, "signature_tolerance_seconds": 0},
    )
    assert deliver(client, "bigcommerce_cart_created.json").json["status"] == "ok"
    cart = cart_row(db, org.org_id)
    assert cart is not None and cart["email"] is None and cart["item_count"] == 0
    # The order event without an API to read it is kept raw; conversion still works.
    assert deliver(client, "bigcommerce_order_created.json").json["status"] == "ok"
    assert deliver(client, "bigcommerce_cart_converted.json").json["status"] == "ok"
    assert cart_row(db, org.org_id)["status"] == "converted"
    assert recorder.requests == []


# --- the v3 cart read straight into the canonical cart ----------------------------------------


def v3_cart(**changes):
    cart = json.loads(fixture_bytes("bigcommerce_cart_v3.json"))["data"]
    cart.update(changes)
    return cart


def test_v3_cart_becomes_the_canonical_cart():
    from integrations.bigcommerce.adapter import cart_to_canonical

    cart = cart_to_canonical(v3_cart(email=" Sam.Lee@Example.com "), None)
    assert isinstance(cart, CanonicalCart)
    assert cart.platform == "bigcommerce"
    assert cart.external_id == "3c9f2a1e-7b4d-4e8a-9c1f-5a6b7c8d9e0f"
    assert cart.email == "sam.lee@example.com" and cart.currency == "USD"
    assert cart.customer_external_id is None  # customer 0 is a guest
    assert cart.total_price == Decimal("119.98")
    [line] = cart.line_items
    assert (line.title, line.sku, line.product_id, line.variant_id) == (
        "Organic Cotton Hoodie",
        "HOOD-NVY-L",
        "112",
        "358",
    )
    assert (line.quantity, line.price) == (2, Decimal("59.99"))
    assert cart.restore_url.startswith("https://shop.example.com/cart.php?action=loadInCheckout")
    assert cart.source_updated_at.isoformat() == "2026-03-14T15:23:10+00:00"
    # Validating it again as a plain CanonicalCart changes nothing: one pass was enough.
    assert CanonicalCart.validate(cart.to_dict()) == cart


def test_v3_cart_lines_of_every_kind_and_prices():
    from integrations.bigcommerce.adapter import cart_to_canonical

    items = {
        "physical_items": [{"name": "Mug", "product_id": 1, "quantity": 1, "list_price": 9.5}],
        "digital_items": [
            {"name": "E-book", "product_id": 2, "quantity": 1, "sale_price": 4, "list_price": 5}
        ],
        "custom_items": [],
        "gift_certificates": [{"id": "gc1", "name": "Gift for Ana", "amount": 25}],
    }
    cart = cart_to_canonical(v3_cart(line_items=items, customer_id=77, redirect_urls=None), None)
    assert [(i.title, i.product_id, i.price) for i in cart.line_items] == [
        ("Mug", "1", Decimal("9.5")),
        ("E-book", "2", Decimal("4")),
        ("Gift for Ana", "gc1", Decimal("25")),
    ]
    assert cart.customer_external_id == "77" and cart.restore_url is None


def test_v3_cart_with_absent_or_null_line_groups():
    from integrations.bigcommerce.adapter import cart_to_canonical

    items = {
        "physical_items": None,
        "digital_items": [{"name": "E-book", "product_id": 2, "quantity": 1, "sale_price": 4}],
    }
    cart = cart_to_canonical(v3_cart(line_items=items), None)
    assert [(i.title, i.product_id, i.price) for i in cart.line_items] == [
        ("E-book", "2", Decimal("4"))
    ]
    assert cart_to_canonical(v3_cart(line_items={}), None).line_items == []
    assert cart_to_canonical(v3_cart(line_items=None), None).line_items is None


@pytest.mark.parametrize(
    "changes",
    [
        {"line_items": []},
        {"line_items": {"physical_items": {"a": 1}}},
        {"line_items": {"physical_items": ["x"]}},
        {"cart_amount": -1},
        {"cart_amount": 1e13},
        {"id": ""},
        {"line_items": {"physical_items": [{"quantity": -2}]}},
        {"cart_amount": "NaN"},
        {"line_items": {"physical_items": [{"sale_price": "Infinity"}]}},
        {"line_items": {"physical_items": [{"quantity": True}]}},
        {"email": 5},
        {"line_items": {"physical_items": [{"quantity": 2**31}]}},
        {
            "line_items": {
                "physical_items": [{"quantity": 2**30}],
                "digital_items": [{"quantity": 2**30}],
            }
        },  # app.carts.item_count is an integer
    ],
)
def test_v3_cart_of_the_wrong_shape_is_refused(changes):
    from integrations.bigcommerce.adapter import cart_to_canonical

    with pytest.raises(ValueError):
        cart_to_canonical(v3_cart(**changes), None)
